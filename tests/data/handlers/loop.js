// Never returns: the time limit must stop it.
export function onPublish(ctx) {
  for (;;) {}
}
