"""Send: tell the pages a site's posts link to, by WebMention or else by Pingback.

One module per concern, imports pointing one way (site → post → run → pacing; reports below):

- site.py: the entry point: the URL given is a feed (its entries, each sent as a post) or a post
- post.py: one post: choose its targets, discover each one's endpoint, send, read each answer
- run.py: what a run's posts share: the pace, the deadline, the client; fetching a source
- pacing.py: the pace of a run's requests: a bound on all, a share per host, one retry
- report.py: what happened to each target of a post, as a table or JSON; --previous read back
- feed_report.py: the same for a feed: every entry, taken or left and why, with its targets
- gate.py: who may start a send over HTTP (POST /api/send), from which sources, how often

Which entries a feed offers is pingproxy/feeds.py (pure), beside links.py (which links a post
makes): a feed only hands send a list of pages.
"""
