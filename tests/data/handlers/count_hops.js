// Counts the nodes that ran it: a cluster runs onPublish once, on the node that accepted the
// publish, so every subscriber sees hops 1 and the accepting node's port. Refuses subscriptions
// to .../closed on the subscriber's own node.
import { util } from '@aws-appsync/utils'

export function onPublish(ctx) {
  return ctx.events.map((e) => ({ id: e.id, payload: { ...e.payload, hops: (e.payload.hops ?? 0) + 1 } }))
}

export function onSubscribe(ctx) {
  if (ctx.info.channel.path.endsWith('/closed')) util.error('closed on this node')
}
