"""`posbus web`: a read-only live dashboard of a running stack, served on loopback.

Pure parts (`precision`, `risk_usage`, `bus_view`, `dashboard`, `access_token`) build and
check what the page shows; `stack_reads` and `feed` read the stack on one thread of
their own (they own its ZeroMQ sockets); `hub`, `app` and `server` serve it with
aiohttp on the event loop's thread. Nothing here sends a command that changes state.
"""
