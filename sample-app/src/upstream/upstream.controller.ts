import { BadGatewayException, Controller, Get } from '@nestjs/common';
import { InjectSharedSession, SharedSessionClient } from 'nestjs-sessions/upstream';
import { UPSTREAM_NAME, UpstreamTarget } from './upstream.target.js';

/** What `GET /upstream/data` answers. */
export interface UpstreamDataResponse {
  /** What the upstream's `GET /data` returned. */
  data: unknown;
  /**
   * Upstream logins so far, as counted by the upstream; by this process when the upstream does not
   * say (one that is not the sample's fake).
   */
  upstreamLogins: number;
}

/** Reads the upstream's data through the shared upstream session. */
@Controller('upstream')
export class UpstreamController {
  constructor(
    @InjectSharedSession(UPSTREAM_NAME) private readonly upstream: SharedSessionClient,
    private readonly target: UpstreamTarget,
  ) {}

  /**
   * `{ data, upstreamLogins }`. 503 when the upstream cannot be reached with a valid session (the
   * message names the upstream); 502 when it answers with an error.
   */
  @Get('data')
  async data(): Promise<UpstreamDataResponse> {
    const response = await this.upstream.get('/data');
    if (!response.ok) {
      await response.body?.cancel();
      throw new BadGatewayException(`The upstream answered ${response.status}`);
    }
    const data: unknown = await response.json();
    const counted = await this.target.loginCount();
    return { data, upstreamLogins: counted ?? this.upstream.loginCount };
  }
}
