// Hot-plugging the LiveMR channel: a virtserialport named org.livemr.0 backed by a unix-socket
// chardev on which QEMU listens, so a VM that was started without the channel can get one.

import type { QmpClient } from '../protocol/client.js';
import { QmpError } from '../protocol/errors.js';
import { asArray, str } from './shape.js';
import { DEVICE_DELETED } from './events.js';

export interface ChannelOptions {
  /** qdev id of the new port; its chardev is `<id>-chr` */
  id: string;
  /** host unix socket QEMU listens on */
  socketPath: string;
  /** port name the guest sees in /sys/class/virtio-ports/vportXpY/name */
  name?: string;
  /** virtio-serial bus, e.g. 'vser0.0'; found with findVirtioSerialBus() when omitted */
  bus?: string;
}

export interface Channel {
  deviceId: string;
  chardevId: string;
  socketPath: string;
  bus: string;
  name: string;
}

/** First virtio-serial controller that has a qdev id → its bus '<id>.0'. */
export async function findVirtioSerialBus(client: QmpClient): Promise<string> {
  const cmd = 'qom-list';
  const entries = asArray(cmd, await client.execute(cmd, { path: '/machine/peripheral' }));
  for (const e of entries) {
    if (/^child<virtio-serial-/.test(str(cmd, e, 'type'))) return `${str(cmd, e, 'name')}.0`;
  }
  throw new QmpError('no virtio-serial controller with an id (add -device virtio-serial-pci,id=vser0)');
}

export async function addChannel(client: QmpClient, o: ChannelOptions): Promise<Channel> {
  const channel: Channel = {
    deviceId: o.id,
    chardevId: `${o.id}-chr`,
    socketPath: o.socketPath,
    bus: o.bus ?? (await findVirtioSerialBus(client)),
    name: o.name ?? 'org.livemr.0',
  };
  await client.execute('chardev-add', {
    id: channel.chardevId,
    backend: { type: 'socket', data: { addr: { type: 'unix', data: { path: o.socketPath } }, server: true, wait: false } },
  });
  try {
    await client.execute('device_add', {
      driver: 'virtserialport',
      id: channel.deviceId,
      bus: channel.bus,
      chardev: channel.chardevId,
      name: channel.name,
    });
  } catch (err) {
    await client.execute('chardev-remove', { id: channel.chardevId }).catch(() => {});
    throw err;
  }
  return channel;
}

/** Unplug the port, wait until QEMU reports DEVICE_DELETED, then remove its chardev. */
export async function removeChannel(client: QmpClient, channel: Pick<Channel, 'deviceId' | 'chardevId'>, timeoutMs = 10_000): Promise<void> {
  const listener = client.listen({ names: [DEVICE_DELETED] });
  try {
    await client.execute('device_del', { id: channel.deviceId });
    await listener.waitFor((ev) => ev.data.device === channel.deviceId, timeoutMs, `DEVICE_DELETED for ${channel.deviceId}`);
  } finally {
    listener.close();
  }
  await client.execute('chardev-remove', { id: channel.chardevId });
}
