// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title L2 message passer: the L2 predeploy where withdrawals to L1 start.
/// @notice `initiateWithdrawal` keeps the value sent (the L2 side of the asset leaves circulation: this contract has
/// no way to send it back) and marks the withdrawal's hash in `sentMessages`. The L1 Portal proves that mark with a
/// Merkle-Patricia proof of this contract's storage under a certified output's EVM state root, so the storage layout
/// is part of the protocol: `sentMessages` is slot 0 (the value of a hash h lives at keccak256(h . 0) and is 1),
/// `messageNonce` slot 1. Never reorder them.
contract L2MessagePasser {
    /// Asset ids, as the Portal's.
    uint8 public constant ASSET_ETH = 0;
    uint8 public constant ASSET_LUMIA = 1;

    mapping(bytes32 withdrawalHash => bool) public sentMessages;
    /// The next withdrawal's nonce: every withdrawal hash is unique.
    uint256 public messageNonce;

    error UnknownAsset(uint8 asset);
    error ZeroAmount();
    error ZeroAddress();

    event MessagePassed(
        uint256 indexed nonce,
        address indexed sender,
        address indexed l1Recipient,
        uint8 asset,
        uint256 amount,
        bytes32 withdrawalHash
    );

    /// Withdraws `msg.value` of `asset` to `l1Recipient` on L1, once proven and finalized there.
    function initiateWithdrawal(address l1Recipient, uint8 asset) external payable returns (bytes32 withdrawalHash) {
        if (asset > ASSET_LUMIA) revert UnknownAsset(asset);
        if (l1Recipient == address(0)) revert ZeroAddress();
        if (msg.value == 0) revert ZeroAmount();
        uint256 nonce = messageNonce++;
        withdrawalHash = hashWithdrawal(nonce, msg.sender, l1Recipient, asset, msg.value);
        sentMessages[withdrawalHash] = true;
        emit MessagePassed(nonce, msg.sender, l1Recipient, asset, msg.value, withdrawalHash);
    }

    /// keccak256(abi.encode(nonce, sender, l1Recipient, asset, amount)): the Portal computes the same.
    function hashWithdrawal(uint256 nonce, address sender, address l1Recipient, uint8 asset, uint256 amount)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(nonce, sender, l1Recipient, asset, amount));
    }
}
