// The trivial handler: what AppSync does when no handler is defined.
export function onPublish(ctx) {
  return ctx.events
}
