// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title L2 message passer: the L2 predeploy where withdrawals to L1 start.
/// @notice `initiateWithdrawal` withdraws LUMIA, the L2's native coin: it keeps the value sent (the L2 side of the
/// asset leaves circulation: this contract has no way to send it back) and marks the withdrawal's hash in
/// `sentMessages`. ETH lives on the L2 as the BridgedEth token: its `withdraw` burns and calls `initiateEthWithdrawal`,
/// which only that predeploy may call. The L1 Portal proves that mark with a
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

    /// src/l1/deploy-finality.ts BRIDGED_ETH_ADDRESS.
    address public constant BRIDGED_ETH = 0x00000000000000000000000000000000004c7503;

    error UnknownAsset(uint8 asset);
    error ZeroAmount();
    error ZeroAddress();
    error NotBridgedEth(address caller);

    event MessagePassed(
        uint256 indexed nonce,
        address indexed sender,
        address indexed l1Recipient,
        uint8 asset,
        uint256 amount,
        bytes32 withdrawalHash
    );

    /// Withdraws `msg.value` LUMIA (asset 1, the native coin) to `l1Recipient` on L1, once proven and finalized there.
    /// ETH leaves through BridgedEth.withdraw: `asset` 0 here is refused (native LUMIA is not ETH).
    function initiateWithdrawal(address l1Recipient, uint8 asset) external payable returns (bytes32 withdrawalHash) {
        if (asset != ASSET_LUMIA) revert UnknownAsset(asset);
        if (msg.value == 0) revert ZeroAmount();
        return _pass(msg.sender, l1Recipient, ASSET_LUMIA, msg.value);
    }

    /// The ETH withdrawal BridgedEth starts after burning `amount` of `sender`'s tokens.
    function initiateEthWithdrawal(address sender, address l1Recipient, uint256 amount)
        external
        returns (bytes32 withdrawalHash)
    {
        if (msg.sender != BRIDGED_ETH) revert NotBridgedEth(msg.sender);
        if (amount == 0) revert ZeroAmount();
        return _pass(sender, l1Recipient, ASSET_ETH, amount);
    }

    function _pass(address sender, address l1Recipient, uint8 asset, uint256 amount)
        private
        returns (bytes32 withdrawalHash)
    {
        if (l1Recipient == address(0)) revert ZeroAddress();
        uint256 nonce = messageNonce++;
        withdrawalHash = hashWithdrawal(nonce, sender, l1Recipient, asset, amount);
        sentMessages[withdrawalHash] = true;
        emit MessagePassed(nonce, sender, l1Recipient, asset, amount, withdrawalHash);
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
