"""
WAN bootstrap: a server where nodes register and learn peers, and the client each node runs.

L{p2pnet_tx.bootstrap.v1} holds the messages of the C{/v1} API that both sides share (signed
register and heartbeat requests, replies, peer entries); L{p2pnet_tx.tasks} holds the network
tasks an authority signs.  The server and the client are modules of this package.
"""
