// A realistic handler: validate, drop spam, enrich with the channel and util.time, per-event error.
import { util } from '@aws-appsync/utils'

export function onPublish(ctx) {
  return ctx.events
    .filter((e) => !e.payload.spam)
    .map((e) => {
      if (typeof e.payload !== 'object' || e.payload === null) {
        return { id: e.id, error: 'payload must be an object' }
      }
      return {
        id: e.id,
        payload: { ...e.payload, channel: ctx.info.channel.path, at: util.time.nowEpochMilliSeconds() },
      }
    })
}
