// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

interface IL2MessagePasser {
    function initiateEthWithdrawal(address sender, address l1Recipient, uint256 amount) external returns (bytes32);
}

/// @title Bridged ETH: the L2 predeploy holding ETH deposited through the L1 Portal (the L2's native coin is LUMIA).
/// @notice The protocol mints: a block's ETH deposits are credited by the execution core writing this contract's
/// storage directly (OpenZeppelin ERC20 layout: `_balances` at slot 0, `_totalSupply` at slot 2; part of the
/// protocol, never reorder), so a mint emits no Transfer event. `withdraw` burns and starts the withdrawal in the
/// L2MessagePasser, the only way out. The code is placed at genesis, no constructor runs: name and symbol are constants.
contract BridgedEth is ERC20 {
    /// src/l1/deploy-finality.ts L2_MESSAGE_PASSER_ADDRESS.
    address public constant MESSAGE_PASSER = 0x00000000000000000000000000000000004c7502;

    error ZeroAmount();

    constructor() ERC20("", "") {}

    function name() public pure override returns (string memory) {
        return "Bridged Ether";
    }

    function symbol() public pure override returns (string memory) {
        return "ETH";
    }

    /// Burns `amount` of the caller's bridged ETH and withdraws it to `l1Recipient` (claimable on L1 once proven
    /// against a certified output and after the Portal's delay).
    function withdraw(address l1Recipient, uint256 amount) external returns (bytes32 withdrawalHash) {
        if (amount == 0) revert ZeroAmount();
        _burn(msg.sender, amount);
        withdrawalHash = IL2MessagePasser(MESSAGE_PASSER).initiateEthWithdrawal(msg.sender, l1Recipient, amount);
    }
}
