import { readdir, readFile, readlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';

/**
 * A local start that failed for a reason the user can fix, told in one line that says how:
 * `npm start` prints the message alone, without a stack trace.
 */
export class LocalStartError extends Error {
  override name = 'LocalStartError';
}

/** The refusal of a port someone else holds, naming them when this machine says who (Linux /proc). */
export async function portInUseError(host: string, port: number): Promise<LocalStartError> {
  const owner = await portOwner(port).catch(() => undefined);
  const by = owner ? ` by ${owner}` : '';
  return new LocalStartError(`port ${port} on ${host} is already in use${by}: stop that, or choose another port, e.g. PORT=${port + 1} npm start`);
}

/** Listens, or explains in one line who holds the port. */
export async function listenOrExplain(server: Server, port: number, host: string): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    throw (error as NodeJS.ErrnoException).code === 'EADDRINUSE' ? await portInUseError(host, port) : error;
  }
}

/** Refuses, in one line, a port someone already listens on; the caller binds it for real later. */
export async function checkPortFree(host: string, port: number): Promise<void> {
  const probe = createServer();
  await listenOrExplain(probe, port, host);
  await new Promise((resolve) => probe.close(resolve));
}

/**
 * `pid N (command line)` of the process listening on the TCP port, from /proc/net/tcp{,6} and
 * the socket links in /proc/<pid>/fd; undefined where there is no /proc or it is not ours to read.
 */
export async function portOwner(port: number): Promise<string | undefined> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const lines = (await readFile(table, 'utf8').catch(() => '')).split('\n').slice(1);
    for (const line of lines) {
      const fields = line.trim().split(/\s+/);
      // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; the inode is the tenth field.
      if (fields[1]?.endsWith(`:${hexPort}`) && fields[3] === '0A' && fields[9]) inodes.add(`socket:[${fields[9]}]`);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (!inodes.has(target)) continue;
      const commandLine = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0').filter(Boolean).join(' ');
      return `pid ${pid}${commandLine ? ` (${shorten(commandLine)})` : ''}`;
    }
  }
  return undefined;
}

function shorten(text: string, max = 100): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
