import { nothing } from 'no-such-module'

export function onPublish(ctx) {
  return ctx.events
}
