"""The real Anvil the stack runs."""

from __future__ import annotations

from core.settings import Settings
from liftledger.stack.anvil import anchorer_address, rpc_call


def test_chain_answers_with_the_configured_chain_id(stack_settings: Settings) -> None:
    chain_id = int(rpc_call(stack_settings.resolved_chain_url(), "eth_chainId"), 16)
    assert chain_id == stack_settings.chain_id


def test_anchorer_account_is_funded(stack_settings: Settings) -> None:
    balance = int(
        rpc_call(
            stack_settings.resolved_chain_url(),
            "eth_getBalance",
            [anchorer_address(stack_settings), "latest"],
        ),
        16,
    )
    assert balance >= 10 * 10**18
