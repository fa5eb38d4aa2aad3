// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IOutputOracle, IRegistryViews, L2Output} from "./Interfaces.sol";

/// @title Output oracle: L2 outputs certified by the subnet's validator set.
/// @notice Anyone may propose an output: the authority is the certificate, not the caller. An output is an L2 block
/// header (the node's version 6 encoding, src/chain/block.ts, docs/protocol.md "Blocks") with a soft-finality
/// certificate of more than 2/3 of the power of the registry epoch whose set the header names: the aggregate BLS
/// signature over the precommit digest of the block (consensus/signing.ts certificateDigest), verified by
/// SequencerRegistry.verifyCertificate. Heights strictly increase from output to output. The header's EVM state root
/// is kept so that the Portal can prove L2 state (withdrawals) under it.
contract OutputOracle is IOutputOracle {
    uint8 public constant HEADER_VERSION = 6;
    /// The EVM's id in the header's VM root list (src/execution/vm.ts EVM_VM).
    uint8 public constant EVM_VM_ID = 1;
    /// src/chain/block.ts MAX_VMS: the most (vm id, root) entries a header carries.
    uint256 public constant MAX_VMS = 8;
    bytes32 public constant PRECOMMIT_DOMAIN = keccak256("lumia.dcn.v1.precommit");

    // Header v6 byte offsets (big-endian integers; docs/protocol.md "Blocks").
    uint256 private constant CHAIN_ID_OFFSET = 1;
    uint256 private constant HEIGHT_OFFSET = 9;
    uint256 private constant VALIDATOR_SET_ID_OFFSET = 117;
    uint256 private constant STATE_ROOT_OFFSET = 317;
    uint256 private constant VM_COUNT_OFFSET = 629;
    uint256 private constant VM_ROOTS_OFFSET = 633;
    uint256 private constant VM_ROOT_ENTRY_BYTES = 33;

    IRegistryViews public immutable registry;
    /// The subnet's chain id: headers and certificate digests commit to it.
    uint64 public immutable subnetChainId;
    /// How many epochs before the registry's current one a certifying set may be: a set whose stake may already be
    /// unbonded and withdrawn could sign anything at no cost, so its certificates are not taken.
    uint64 public immutable maxEpochAge;

    L2Output[] private _outputs;

    error ZeroAddress();
    error MalformedHeader(uint256 length);
    error BadHeaderVersion(uint8 version);
    error WrongChainId(uint64 chainId, uint64 expected);
    error HeightNotIncreasing(uint64 height, uint64 lastHeight);
    error EpochTooOld(uint64 epoch, uint64 currentEpoch);
    error ValidatorSetMismatch(uint64 epoch, bytes32 headerSetId, bytes32 epochSetId);
    error BadVmRoots();
    error StateRootMismatch(bytes32 headerStateRoot, bytes32 computed);
    error NoEvmRoot();
    error UnknownOutput(uint256 index, uint256 count);
    error NoOutputAtOrAbove(uint64 height);

    event OutputProposed(uint256 indexed index, uint64 indexed height, bytes32 blockHash, bytes32 stateRoot);

    constructor(IRegistryViews registry_, uint64 subnetChainId_, uint64 maxEpochAge_) {
        if (address(registry_) == address(0)) revert ZeroAddress();
        registry = registry_;
        subnetChainId = subnetChainId_;
        maxEpochAge = maxEpochAge_;
    }

    /// Records the block `header` certified in `round` by `epoch`'s set: `signers` is the bitmap over the set order,
    /// `signature` the 96-byte compressed aggregate and `signatureG2` the same point in EIP-2537 form. The
    /// registry's own errors (UnknownEpoch, BadSignerBitmap, InsufficientSigningPower, SignatureEncodingMismatch,
    /// InvalidSignature) pass through.
    function proposeOutput(
        uint64 epoch,
        bytes calldata header,
        uint32 round,
        bytes calldata signers,
        bytes calldata signature,
        bytes calldata signatureG2
    ) external returns (uint256 index) {
        L2Output memory output = _checkHeader(epoch, header);
        registry.verifyCertificate(
            epoch, certificateDigest(output.height, round, output.blockHash), signers, signature, signatureG2
        );
        index = _outputs.length;
        _outputs.push(output);
        emit OutputProposed(index, output.height, output.blockHash, output.stateRoot);
    }

    /// consensus/signing.ts certificateDigest: the precommit digest of block `blockHash` at `height`, `round`.
    function certificateDigest(uint64 height, uint32 round, bytes32 blockHash) public view returns (bytes32) {
        return keccak256(abi.encodePacked(PRECOMMIT_DOMAIN, subnetChainId, height, round, blockHash));
    }

    /// Checks what the header says against this chain, the last output and the registry; returns the output it makes.
    function _checkHeader(uint64 epoch, bytes calldata header) private view returns (L2Output memory output) {
        if (header.length < VM_ROOTS_OFFSET) revert MalformedHeader(header.length);
        if (uint8(header[0]) != HEADER_VERSION) revert BadHeaderVersion(uint8(header[0]));
        uint64 chainId = uint64(bytes8(header[CHAIN_ID_OFFSET:CHAIN_ID_OFFSET + 8]));
        if (chainId != subnetChainId) revert WrongChainId(chainId, subnetChainId);
        uint64 height = uint64(bytes8(header[HEIGHT_OFFSET:HEIGHT_OFFSET + 8]));
        uint256 count = _outputs.length;
        uint64 lastHeight = count == 0 ? 0 : _outputs[count - 1].height;
        if (height <= lastHeight) revert HeightNotIncreasing(height, lastHeight);

        uint64 current = registry.currentEpoch();
        if (uint256(epoch) + maxEpochAge < current) revert EpochTooOld(epoch, current);
        bytes32 headerSetId = bytes32(header[VALIDATOR_SET_ID_OFFSET:VALIDATOR_SET_ID_OFFSET + 32]);
        bytes32 epochSetId = registry.epochInfo(epoch).setId;
        if (headerSetId != epochSetId) revert ValidatorSetMismatch(epoch, headerSetId, epochSetId);

        bytes32 stateRoot = bytes32(header[STATE_ROOT_OFFSET:STATE_ROOT_OFFSET + 32]);
        output = L2Output({
            blockHash: keccak256(header),
            stateRoot: stateRoot,
            evmRoot: _evmRoot(header, stateRoot),
            height: height,
            epoch: epoch,
            l1BlockNumber: uint64(block.number),
            l1Timestamp: uint64(block.timestamp)
        });
    }

    /// Checks the VM root list (well formed, sorted by id, committed to by `stateRoot`) and returns the EVM's root.
    function _evmRoot(bytes calldata header, bytes32 stateRoot) private pure returns (bytes32 evmRoot) {
        uint256 n = uint32(bytes4(header[VM_COUNT_OFFSET:VM_ROOTS_OFFSET]));
        if (n == 0 || n > MAX_VMS) revert BadVmRoots();
        if (header.length != VM_ROOTS_OFFSET + n * VM_ROOT_ENTRY_BYTES) revert MalformedHeader(header.length);
        bytes calldata roots = header[VM_ROOTS_OFFSET:];
        bytes32 computed = keccak256(roots);
        if (computed != stateRoot) revert StateRootMismatch(stateRoot, computed);
        int256 previous = -1;
        bool found = false;
        for (uint256 i = 0; i < n; i++) {
            uint256 at = i * VM_ROOT_ENTRY_BYTES;
            uint8 vm = uint8(roots[at]);
            if (int256(uint256(vm)) <= previous) revert BadVmRoots();
            previous = int256(uint256(vm));
            if (vm == EVM_VM_ID) {
                evmRoot = bytes32(roots[at + 1:at + VM_ROOT_ENTRY_BYTES]);
                found = true;
            }
        }
        if (!found) revert NoEvmRoot();
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Views

    function outputCount() external view returns (uint256) {
        return _outputs.length;
    }

    function outputAt(uint256 index) external view returns (L2Output memory) {
        if (index >= _outputs.length) revert UnknownOutput(index, _outputs.length);
        return _outputs[index];
    }

    function latestOutput() external view returns (L2Output memory) {
        uint256 count = _outputs.length;
        if (count == 0) revert UnknownOutput(0, 0);
        return _outputs[count - 1];
    }

    /// The index of the first output at or above `height` (heights increase with the index: binary search).
    function outputIndexForHeight(uint64 height) external view returns (uint256) {
        uint256 lo = 0;
        uint256 hi = _outputs.length;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (_outputs[mid].height < height) lo = mid + 1;
            else hi = mid;
        }
        if (lo == _outputs.length) revert NoOutputAtOrAbove(height);
        return lo;
    }
}
