// Per-event errors: an event without a numeric amount goes back to the publisher in `failed`
// with this message; the others are broadcast. Subscriptions: only to channels under /validate/ok,
// and the caller's identity decides (API keys have none, so util.unauthorized() refuses).
import { util } from '@aws-appsync/utils'

export function onPublish(ctx) {
  return ctx.events.map((event) => {
    if (typeof event.payload.amount !== 'number') {
      return { id: event.id, error: 'amount must be a number' }
    }
    return event
  })
}

export function onSubscribe(ctx) {
  if (ctx.info.channel.segments[1] === 'private' && ctx.identity === null) {
    util.unauthorized()
  }
  if (ctx.info.channel.path.includes('closed')) {
    util.error('channel ' + ctx.info.channel.path + ' is closed')
  }
}
