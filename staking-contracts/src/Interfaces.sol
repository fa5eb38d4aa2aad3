// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// One validator of an epoch's set, as snapshotted at the epoch boundary (one storage slot).
struct Member {
    uint32 sequencerId;
    /// Voting power: the pool's total stake in whole LUMIA (stake / 1e18, rounded down).
    uint64 power;
    /// The operator's commission in force for the whole epoch (basis points).
    uint16 commissionBps;
    /// The pool's total stake in wei at the boundary: the stake share of the epoch's rewards.
    uint128 stake;
}

interface ISequencerRegistry {
    function currentEpoch() external view returns (uint64);
    function isOpen(uint32 sequencerId) external view returns (bool);
    function isJailed(uint32 sequencerId) external view returns (bool);
    function operatorOf(uint32 sequencerId) external view returns (address);
    function epochMembers(uint64 epoch) external view returns (Member[] memory);
    function memberOf(uint64 epoch, uint256 index) external view returns (Member memory);
    function epochSize(uint64 epoch) external view returns (uint256);
    function verifyCertificate(
        uint64 epoch,
        bytes32 digest,
        bytes calldata signers,
        bytes calldata signature,
        bytes calldata signatureG2
    ) external view returns (uint64 signingPower, uint64 totalPower);
    function verifyMemberSignature(
        uint64 epoch,
        uint256 index,
        bytes32 digest,
        bytes calldata signature,
        bytes calldata signatureG2
    ) external view returns (bool);
    function jail(uint32 sequencerId) external;
}

interface IStaking {
    function initPool(uint32 sequencerId, address operator, uint16 commissionBps) external;
    function snapshotOf(uint32 sequencerId)
        external
        view
        returns (uint256 selfStake, uint256 totalStake, uint16 commissionBps);
    function sharesOf(uint32 sequencerId, address account) external view returns (uint256);
    function poolShares(uint32 sequencerId) external view returns (uint256);
    function stakeFor(address account, uint32 sequencerId, uint256 amount) external;
    function slash(uint32 sequencerId, uint16 fractionBps) external returns (uint256 slashed);
    function unbondingEpochs() external view returns (uint64);
}

interface IRewards {
    /// Called by Staking before an account's shares in a pool change, with the shares it held until now.
    function settle(uint32 sequencerId, address account, uint256 shares) external;
}

/// An epoch's summary as SequencerRegistry.epochInfo returns it (same ABI layout as its EpochInfo).
struct EpochSummary {
    uint64 startBlock;
    uint64 totalPower;
    uint32 size;
    bytes32 setId;
}

/// What the hard-finality contracts (BatchInbox, OutputOracle) read of the registry: SequencerRegistry's public
/// views, declared apart from ISequencerRegistry so that interface stays as it is.
interface IRegistryViews {
    function currentEpoch() external view returns (uint64);
    function sequencerIdOf(address operator) external view returns (uint32);
    function isOpen(uint32 sequencerId) external view returns (bool);
    function isJailed(uint32 sequencerId) external view returns (bool);
    function epochInfo(uint64 epoch) external view returns (EpochSummary memory);
    function verifyCertificate(
        uint64 epoch,
        bytes32 digest,
        bytes calldata signers,
        bytes calldata signature,
        bytes calldata signatureG2
    ) external view returns (uint64 signingPower, uint64 totalPower);
}

/// One certified L2 output (OutputOracle): the block, its state commitments and when L1 learnt of it.
struct L2Output {
    bytes32 blockHash;
    /// The header's global state root: keccak256 over its (vm id, root) list.
    bytes32 stateRoot;
    /// The EVM's state trie root from that list: withdrawals are proven under it.
    bytes32 evmRoot;
    uint64 height;
    /// The registry epoch whose set certified the block.
    uint64 epoch;
    uint64 l1BlockNumber;
    uint64 l1Timestamp;
}

interface IOutputOracle {
    function outputCount() external view returns (uint256);
    function outputAt(uint256 index) external view returns (L2Output memory);
}
