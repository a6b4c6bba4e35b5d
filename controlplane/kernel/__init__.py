"""The kernel: the model-free bottom layer every app may import, and that imports no app.

It holds what every layer shares: the domain exception and the reason-code catalogue (`errors`,
`reasons`), request context (`context`), canonical JSON (`canonical`), the webhook signature schemes
(`signatures`), the replay report shape and the replayer registry (`replay`), the contract shape and
registry (`contracts`), the inbound webhook adapter interface and registry (`webhooks`), the console page
toolkit (`pages`), the console's navigation, dashboard panels, banners and page mounts (`navigation`) and
the beat-schedule registry (`periodic`). It defines no models and knows the name of no app: apps plug into
it from their `AppConfig.ready()` (docs/architecture.md).
"""
