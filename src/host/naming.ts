// Names of the composed files the agent creates for shared guest files:
//   livemr_<vm>_<escaped path>
// The composition namespace allows [A-Za-z0-9._-]. The escape is reversible and unambiguous:
//   '/' → '_'    '-' → '--'    '_' → '-u'    any other byte outside [A-Za-z0-9.] → '-xHH' (UTF-8)
// so /var/log/app_1.log on vm "web1" becomes web1_var_log_app-u1.log.

const PLAIN = /[A-Za-z0-9.]/;

export function escapePath(guestPath: string): string {
  let out = '';
  for (const b of Buffer.from(guestPath.replace(/^\/+/, ''), 'utf8')) {
    const c = String.fromCharCode(b);
    if (c === '/') out += '_';
    else if (c === '-') out += '--';
    else if (c === '_') out += '-u';
    else if (b < 0x80 && PLAIN.test(c)) out += c;
    else out += `-x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

export function unescapePath(escaped: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < escaped.length; i++) {
    const c = escaped[i]!;
    if (c === '_') bytes.push(0x2f);
    else if (c !== '-') bytes.push(c.charCodeAt(0));
    else {
      const n = escaped[++i];
      if (n === '-') bytes.push(0x2d);
      else if (n === 'u') bytes.push(0x5f);
      else if (n === 'x' && /^[0-9a-f]{2}$/.test(escaped.slice(i + 1, i + 3))) {
        bytes.push(parseInt(escaped.slice(i + 1, i + 3), 16));
        i += 2;
      } else throw new Error(`bad escape in '${escaped}' at ${i}`);
    }
  }
  return '/' + Buffer.from(bytes).toString('utf8');
}

/** Composition name (without the livemr_ prefix) of a shared guest file. */
export function compositionName(vm: string, guestPath: string): string {
  return `${vm}_${escapePath(guestPath)}`;
}

/** VM names appear in file names and metrics labels: keep them simple. */
export const VM_NAME = /^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$/;
