"""The kernel: the model-free bottom layer every app may import, and that imports no app.

It holds what every layer shares: the domain exception and the reason-code catalogue (`errors`,
`reasons`), request context (`context`), canonical JSON (`canonical`), the webhook signature schemes
(`signatures`), the replay report shape (`replay`) and the console page toolkit (`pages`). It defines
no models and knows the name of no app: apps plug into it from their `AppConfig.ready()`.
"""
