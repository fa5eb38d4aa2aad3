// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IRegistryViews} from "./Interfaces.sol";

/// @title Batch inbox: where sequencers post L2 batches for data availability.
/// @notice A batch is a range of L2 heights and its bytes. The bytes stay in the transaction: `submitBatch` takes
/// them as calldata and keeps only their hash in the event (derivation reads the transaction input), and
/// `submitBlobBatch` takes them as EIP-4844 blobs of the same transaction and records their versioned hashes. Only
/// the operator of an open sequencer (registered, approved, not exiting, not jailed) may post, and only in a
/// transaction it sends itself, so the bytes are always the input or the blobs of an L1 transaction. Batches are
/// counted per (epoch, sequencer): the work report's `batchesPosted`. Ranges are not checked against each other:
/// several sequencers may post the same heights, and derivation takes the first batch of each height.
contract BatchInbox {
    /// geth's transaction pool refuses transactions over 128 KiB, so a larger calldata batch would not propagate;
    /// larger batches go in blobs.
    uint256 public constant MAX_BATCH_BYTES = 128 * 1024;
    /// Prague's blob target is 6 and its maximum 9 per block: at most a block's worth in one transaction.
    uint256 public constant MAX_BLOBS = 9;

    IRegistryViews public immutable registry;
    /// Batches posted (calldata and blob): the next batch's index.
    uint64 public batchCount;
    /// Batches posted per epoch (the registry's epoch when posted) and sequencer.
    mapping(uint64 epoch => mapping(uint32 sequencerId => uint64)) public batchesOf;

    error ZeroAddress();
    error NotAnOpenSequencer(address sender, uint32 sequencerId);
    /// The sender is a contract, not the transaction's signer: the data would not be the transaction's input.
    error NotDirectCall(address sender);
    error BadHeightRange(uint64 firstHeight, uint64 lastHeight);
    error EmptyBatch();
    error BatchTooLarge(uint256 size, uint256 max);
    error BadBlobCount(uint256 count, uint256 max);
    /// The transaction carries fewer blobs than `blobCount` (no blob at `index`).
    error MissingBlob(uint256 index);
    /// The transaction carries more blobs than `blobCount`: every blob of a batch transaction must be counted.
    error ExtraBlob(uint256 index);

    event BatchSubmitted(
        uint64 indexed index,
        uint32 indexed sequencerId,
        uint64 firstHeight,
        uint64 lastHeight,
        bytes32 dataHash,
        uint64 epoch
    );
    event BlobBatchSubmitted(
        uint64 indexed index,
        uint32 indexed sequencerId,
        uint64 firstHeight,
        uint64 lastHeight,
        bytes32[] blobHashes,
        uint64 epoch
    );

    constructor(IRegistryViews registry_) {
        if (address(registry_) == address(0)) revert ZeroAddress();
        registry = registry_;
    }

    /// Posts heights `firstHeight..lastHeight` (inclusive) as calldata `data`.
    function submitBatch(uint64 firstHeight, uint64 lastHeight, bytes calldata data) external returns (uint64 index) {
        if (data.length == 0) revert EmptyBatch();
        if (data.length > MAX_BATCH_BYTES) revert BatchTooLarge(data.length, MAX_BATCH_BYTES);
        (uint32 sequencerId, uint64 epoch) = _admit(firstHeight, lastHeight);
        index = batchCount++;
        emit BatchSubmitted(index, sequencerId, firstHeight, lastHeight, keccak256(data), epoch);
    }

    /// Posts heights `firstHeight..lastHeight` (inclusive) as the `blobCount` blobs of this transaction.
    function submitBlobBatch(uint64 firstHeight, uint64 lastHeight, uint256 blobCount) external returns (uint64 index) {
        if (blobCount == 0 || blobCount > MAX_BLOBS) revert BadBlobCount(blobCount, MAX_BLOBS);
        bytes32[] memory hashes = new bytes32[](blobCount);
        for (uint256 i = 0; i < blobCount; i++) {
            hashes[i] = blobhash(i);
            if (hashes[i] == bytes32(0)) revert MissingBlob(i);
        }
        if (blobhash(blobCount) != bytes32(0)) revert ExtraBlob(blobCount);
        (uint32 sequencerId, uint64 epoch) = _admit(firstHeight, lastHeight);
        index = batchCount++;
        emit BlobBatchSubmitted(index, sequencerId, firstHeight, lastHeight, hashes, epoch);
    }

    /// Checks the sender and the range, counts the batch; returns the sender's sequencer and the current epoch.
    function _admit(uint64 firstHeight, uint64 lastHeight) private returns (uint32 sequencerId, uint64 epoch) {
        if (msg.sender != tx.origin) revert NotDirectCall(msg.sender);
        if (firstHeight == 0 || lastHeight < firstHeight) revert BadHeightRange(firstHeight, lastHeight);
        sequencerId = registry.sequencerIdOf(msg.sender);
        if (sequencerId == 0 || !registry.isOpen(sequencerId) || registry.isJailed(sequencerId)) {
            revert NotAnOpenSequencer(msg.sender, sequencerId);
        }
        epoch = registry.currentEpoch();
        batchesOf[epoch][sequencerId] += 1;
    }
}
