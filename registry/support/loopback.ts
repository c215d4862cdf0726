/**
 * Whether a host name is this machine: `localhost` (and `*.localhost`), 127.0.0.0/8 or `::1`
 * (with or without brackets). Traffic to these never crosses a network.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = (hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname).toLowerCase();
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}
