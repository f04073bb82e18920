# Run with:  twistd -ny docs/examples/node.tac
import os
import sys

from twisted.application.service import Application
from twisted.internet import reactor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from embedding import make_node  # noqa: E402

application = Application("p2pnet_tx example node")
make_node(reactor, name="example", listen="tcp:8061").setServiceParent(application)
