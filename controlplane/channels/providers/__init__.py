"""One inbound webhook adapter per chat or code-host provider (controlplane.kernel.webhooks), each
verifying the provider's own signature scheme over the raw bytes, naming its delivery id, and handing
the delivery to controlplane.channels.services.messages. Registered from `ChannelsConfig.ready()`."""
