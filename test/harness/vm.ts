// VM harness: boots a real guest under QEMU for tests, the demo and benchmarks.
// (Implementation lands with issue #2; this is the interface other areas code against.)

export interface GuestDisk {
  /** virtio serial the guest sees in /sys/block/vdX/serial; also its mount point /mnt/<serial> */
  serial: string;
  /** this VM's private qcow2 overlay (backing file = the cached base image) */
  overlay: string;
  /** byte offset of the ext4 filesystem on the disk (0 = whole disk, >0 = partition 1 start) */
  fsOffset: number;
  /** qdev id of the virtio-blk device and node-name of the format node in QEMU */
  id: string;
}

export interface ExecResult { code: number; stdout: Buffer; stderr: Buffer }

export interface GuestVm {
  dir: string;
  pid: number;
  accel: 'kvm' | 'tcg';
  bootMs: number;
  qmpSocket: string;
  /** host end of the virtio-serial port org.livemr.0 (unix socket, QEMU is the server) */
  channelSocket: string;
  consoleLog: string;
  disks: GuestDisk[];
  /** run `sh -c command` in the guest */
  exec(command: string, opts?: { timeoutMs?: number; stdin?: Buffer | string }): Promise<ExecResult>;
  /** like exec but throws unless exit code 0; returns stdout as string */
  sh(command: string, opts?: { timeoutMs?: number; stdin?: Buffer | string }): Promise<string>;
  /** copy a host file into the guest */
  put(hostPath: string, guestPath: string): Promise<void>;
  /** clean shutdown if possible, QEMU killed by PID otherwise; removes overlays and sockets */
  shutdown(): Promise<void>;
}

export interface BootOptions {
  memoryMb?: number;
  /** add the org.livemr.0 channel at boot (default true); false to test hot-plug */
  channel?: boolean;
  /** extra QEMU arguments */
  extraArgs?: string[];
  /** prefix of the log name */
  name?: string;
}

export declare function bootGuest(opts?: BootOptions): Promise<GuestVm>;
