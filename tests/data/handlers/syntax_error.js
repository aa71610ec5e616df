export function onPublish(ctx) {
  return ctx.events.filter((e) => e.payload.ok
}
