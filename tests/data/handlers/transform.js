// Transform and enrich: every event gains the channel, the server time (util.time) and an
// upper-cased message, as in AWS's "Writing event handlers" examples.
import { util } from '@aws-appsync/utils'

export function onPublish(ctx) {
  return ctx.events.map((event) => ({
    id: event.id,
    payload: {
      ...event.payload,
      message: String(event.payload.message ?? '').toUpperCase(),
      channel: ctx.info.channel.path,
      segments: ctx.info.channel.segments,
      receivedAt: util.time.nowISO8601(),
      receivedEpoch: util.time.nowEpochSeconds(),
    },
  }))
}
