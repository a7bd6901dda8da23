"""The pages people use (server-rendered, zh-CN first), on the same services and rules as
the API: a browser session stands for the same principal a token would."""
