"""Six real senders' pingbacks over real sockets: forwarded as they were before the fast path."""

import pytest

from tests.conftest import read_answer
from tests.test_pingback_call import REAL_CLIENTS, SOURCE, TARGET


@pytest.mark.parametrize("client", REAL_CLIENTS)
async def test_each_real_clients_pingback_is_forwarded_with_its_source_and_target(
        proxy, endpoint, client):
    response = await proxy.post("/" + endpoint.url(), data=REAL_CLIENTS[client](SOURCE, TARGET),
                                headers={"Content-Type": "text/xml"})

    assert response.status == 200
    assert "forwarded as a WebMention" in read_answer(await response.read())
    assert [received.form for received in endpoint.received] == [
        {"source": SOURCE, "target": TARGET}]
