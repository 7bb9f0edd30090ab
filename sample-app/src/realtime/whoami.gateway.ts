import { UseGuards } from '@nestjs/common';
import { SubscribeMessage, WebSocketGateway, WebSocketServer } from '@nestjs/websockets';
import type { Server } from 'socket.io';
import { Session, SessionGuard, sessionRoom } from 'nestjs-sessions';
import type { AppSession } from '../session-data.js';

/**
 * socket.io on the app's own port: `whoami` answers the session data of the handshake's cookie,
 * read afresh for every message; without a live session the client gets an `exception` event
 * (`reason: 'missing'`). A logout disconnects the session's sockets.
 */
@WebSocketGateway()
export class WhoamiGateway {
  @WebSocketServer() private readonly server?: Server;

  @SubscribeMessage('whoami')
  @UseGuards(SessionGuard)
  whoami(@Session() session: Session<AppSession>) {
    return { event: 'whoami', data: session.data };
  }

  /** Closes every socket opened with the session `id` (its room; on every instance with the Redis adapter). */
  disconnectSession(id: string): void {
    this.server?.in(sessionRoom(id)).disconnectSockets(true);
  }
}
