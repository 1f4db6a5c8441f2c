"""Alerts: the risk events an operator must see, sent as JSON to webhooks.

`rules` says which `RiskEvent`s alert and how loudly, `dedupe` and
`rate_limit` keep a storm from flooding a channel, `formats` shapes the
request body (generic JSON, Slack-compatible, Telegram `sendMessage`),
`sink` posts one alert, `sender` posts in the background with retries, and
`worker` hosts it all as the `alerts` process of a stack (`[alerts]`,
docs/alerts.md). Webhook URLs and bot tokens are secrets (`secret`): read
from the environment or an owner-only file, never logged.
"""
