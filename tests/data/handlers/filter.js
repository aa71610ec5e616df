// AWS's "Writing event handlers" filter example: events marked as spam are not broadcast.
import { util } from '@aws-appsync/utils'

export function onPublish(ctx) {
  return ctx.events.filter((event) => !event.payload.spam)
}
