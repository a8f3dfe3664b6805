/**
 * The routes of memory spaces: list them with their sizes, delete one with its memories.
 */
import { READ_COVERED, WRITE_SPACE, covers } from './auth.js';
import type { RouteContext } from './memory-routes.js';
import { checkSpace } from './wire.js';

export function registerSpaceRoutes(ctx: RouteContext): void {
  const { app, store, op, schemas } = ctx;

  // A tenant's key lists its own spaces: the names of other tenants' spaces are theirs too.
  app.get(
    '/api/v1/spaces',
    { schema: schemas.listSpaces, config: { auth: READ_COVERED } },
    async (request) => ({ spaces: store.spaces().filter((s) => covers(request, s.name)) }),
  );

  app.delete<{ Params: { space: string } }>(
    '/api/v1/spaces/:space',
    { schema: schemas.deleteSpace, config: { auth: WRITE_SPACE } },
    async (request) => {
      const space = checkSpace(request.params.space);
      const deleted = await op('warmstore.delete_space', { 'warmstore.space': space }, () =>
        store.deleteSpace(space),
      );
      return { space, deleted };
    },
  );
}
