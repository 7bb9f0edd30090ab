import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback between a client under test and a real server, to simulate outages
 * without touching the shared server: `stop()` is "the server went away" (every connection is
 * cut, new ones are refused), `blackhole(true)` is "the network drops packets" (connections are
 * accepted and kept open, but nothing is forwarded, so only timeouts end them). `start()` again,
 * on the same port, is "the server is back".
 *
 * @example
 * const proxy = new TcpProxy({ host: '127.0.0.1', port: 5432 });
 * const port = await proxy.start();
 * // ... point the store at 127.0.0.1:port, then:
 * await proxy.stop();
 * await proxy.start(port);
 */
export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private dropping = false;
  private hanging = false;
  private listeningPort: number | undefined;

  constructor(private readonly target: { host: string; port: number }) {}

  /** The port the proxy listens on (the last one, while stopped). */
  get port(): number {
    if (this.listeningPort === undefined) throw new Error('TcpProxy has not been started');
    return this.listeningPort;
  }

  /** Connections currently open through the proxy (both sides counted). */
  get connections(): number {
    return this.sockets.size;
  }

  /**
   * Listens on 127.0.0.1:`port` (`0`, the default, picks a free port; omit it after a `stop()` to
   * reuse the previous one). Resolves the port.
   */
  async start(port: number = this.listeningPort ?? 0): Promise<number> {
    if (this.server) throw new Error('TcpProxy is already running');
    const server = createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const address = server.address();
    this.listeningPort = typeof address === 'object' && address ? address.port : port;
    return this.listeningPort;
  }

  /** Cuts every connection (both sides) and stops listening. Safe to call when stopped. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.hanging = false;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * While on, bytes are dropped in both directions and new connections are accepted but never
   * reach the target; connections stay open. Turning it off forwards again on the connections
   * that have an upstream; those accepted meanwhile are cut, as a client would have given up.
   */
  blackhole(on: boolean): void {
    this.dropping = on;
    if (!on) {
      for (const socket of this.sockets) {
        if (!(socket as TrackedSocket).peer) socket.destroy();
      }
    }
  }

  /**
   * A hung cut, as a partition or a failover leaves it: while on, every connection (open ones and
   * new ones, which are accepted) stops forwarding and never answers. Turning it off lets new
   * connections through again, but the connections that hung stay hung (half-open, as a peer
   * that vanished leaves them) until the client gives up on them: only a client that drops a
   * hung connection heals.
   */
  hang(on: boolean): void {
    this.hanging = on;
    if (on) {
      for (const socket of this.sockets) (socket as TrackedSocket).hung = true;
    }
  }

  private accept(client: Socket): void {
    this.track(client);
    if (this.hanging) {
      (client as TrackedSocket).hung = true;
      client.on('data', () => undefined);
      return;
    }
    if (this.dropping) {
      client.on('data', () => undefined);
      return;
    }
    const upstream = connect(this.target);
    this.track(upstream);
    (client as TrackedSocket).peer = upstream;
    (upstream as TrackedSocket).peer = client;
    this.forward(client, upstream);
    this.forward(upstream, client);
  }

  private forward(from: Socket, to: Socket): void {
    from.on('data', (chunk) => {
      if ((from as TrackedSocket).hung || (to as TrackedSocket).hung) return;
      if (!this.dropping && !to.destroyed) to.write(chunk);
    });
    from.on('end', () => to.end());
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.sockets.delete(socket);
      (socket as TrackedSocket).peer?.destroy();
    });
  }
}

type TrackedSocket = Socket & { peer?: Socket; hung?: boolean };
