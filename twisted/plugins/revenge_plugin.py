# The twistd dropin for ``twistd revenge``. It must import nothing but Twisted's
# plugin machinery: an import error here makes twistd say only "Unknown
# command", and importing the reactor here would install it too early.
from twisted.application.service import ServiceMaker

revenge = ServiceMaker(
    name="Revenge",
    module="revenge.server.tap",
    description="Revenge media server core (HTTP API, storage, leader-only jobs)",
    tapname="revenge",
)
