"""--cluster values: 'local' or a scheduler's tcp:// address, anything else a clear error."""

import pytest

from leadscore.cluster import ClusterError, check_address


@pytest.mark.parametrize("address", ["local", "tcp://127.0.0.1:8786", "tcp://scheduler.internal:1"])
def test_cluster_addresses_accepted(address: str) -> None:
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["", "Local", "local ", "tcp://host", "127.0.0.1:8786",
                                     "tcp://host:port", "http://host:8786"])
def test_other_values_name_what_is_expected(address: str) -> None:
    with pytest.raises(ClusterError, match="expected 'local'.*tcp://HOST:PORT"):
        check_address(address)
