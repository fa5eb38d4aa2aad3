// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {TrieProof} from "@openzeppelin/contracts/utils/cryptography/TrieProof.sol";
import {Memory} from "@openzeppelin/contracts/utils/Memory.sol";
import {RLP} from "@openzeppelin/contracts/utils/RLP.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IOutputOracle, L2Output} from "./Interfaces.sol";

/// @title Portal: deposits to the L2 and withdrawals proven against certified outputs.
/// @notice Deposits (ETH or LUMIA) are held here and announced by `DepositInitiated` with consecutive nonces from 0;
/// the L2 credits `to`. Each deposit must lie within the asset's [min, max]: the minimum makes dust spam cost the
/// spammer what it costs the L2 to process, the cap bounds what one mistake or exploit moves.
///
/// A withdrawal starts on the L2 (L2MessagePasser.initiateWithdrawal marks its hash in `sentMessages`, slot 0). On
/// L1 anyone proves it against an OutputOracle output: the header must hash to the output's block hash, then a
/// Merkle-Patricia proof of the message passer's account under the output's EVM state root gives its storage root,
/// and a proof of the storage slot of `sentMessages[hash]` under that root must give 1 (eth_getProof's
/// accountProof and storageProof). After `finalizationDelaySeconds` from the proof, anyone finalizes it and the
/// recipient is paid, once. The portal never pays out more of an asset than was deposited of it.
contract Portal is ReentrancyGuard {
    using SafeERC20 for IERC20;
    using RLP for bytes;
    using RLP for Memory.Slice;

    uint8 public constant ASSET_ETH = 0;
    uint8 public constant ASSET_LUMIA = 1;
    uint8 private constant ASSET_COUNT = 2;
    /// L2MessagePasser's `sentMessages` mapping slot (its storage layout is part of the protocol).
    uint256 public constant SENT_MESSAGES_SLOT = 0;
    /// Proof nodes accepted per proof: a secure trie of 2^64 keys is about 16 levels deep.
    uint256 public constant MAX_PROOF_NODES = 32;

    struct Withdrawal {
        uint256 nonce;
        address sender;
        address l1Recipient;
        uint8 asset;
        uint256 amount;
    }

    struct DepositLimits {
        uint256 minEth;
        uint256 maxEth;
        uint256 minLumia;
        uint256 maxLumia;
    }

    struct ProvenWithdrawal {
        uint64 provenAt;
        uint64 outputIndex;
    }

    IOutputOracle public immutable oracle;
    IERC20 public immutable lumia;
    /// The L2MessagePasser predeploy's address on the L2.
    address public immutable messagePasser;
    uint64 public immutable finalizationDelaySeconds;
    uint256 public immutable minDepositEth;
    uint256 public immutable maxDepositEth;
    uint256 public immutable minDepositLumia;
    uint256 public immutable maxDepositLumia;
    /// The L1 block this contract was created in: no deposit is older, so a node reads its events from here on.
    uint256 public immutable deployedAtBlock;

    /// The next deposit's nonce.
    uint64 public depositNonce;
    mapping(uint8 asset => uint256) public totalDeposited;
    mapping(uint8 asset => uint256) public totalWithdrawn;
    mapping(bytes32 withdrawalHash => ProvenWithdrawal) public provenWithdrawals;
    mapping(bytes32 withdrawalHash => bool) public finalizedWithdrawals;

    error ZeroAddress();
    error BadDepositLimits();
    error UnknownAsset(uint8 asset);
    error DepositOutOfRange(uint8 asset, uint256 amount, uint256 min, uint256 max);
    error UnknownOutput(uint256 index, uint256 count);
    error HeaderMismatch(bytes32 headerHash, bytes32 outputBlockHash);
    error ProofTooLong(uint256 nodes, uint256 max);
    /// The account proof of the message passer does not verify under the output's EVM root (TrieProof.ProofError).
    error InvalidAccountProof(uint8 reason);
    error MalformedAccount();
    /// The storage proof of the withdrawal's slot does not verify under the message passer's storage root.
    error InvalidStorageProof(uint8 reason);
    /// The slot is proven, but not to 1: the withdrawal was not initiated.
    error WithdrawalNotSent(bytes32 withdrawalHash);
    error AlreadyProven(bytes32 withdrawalHash);
    error NotProven(bytes32 withdrawalHash);
    error AlreadyFinalized(bytes32 withdrawalHash);
    error TooEarly(bytes32 withdrawalHash, uint256 readyAt, uint256 now_);
    error InsufficientBridgeBalance(uint8 asset, uint256 amount, uint256 available);
    error PaymentFailed(address to, uint256 amount);

    event DepositInitiated(
        uint64 indexed nonce, address indexed from, address indexed to, uint8 asset, uint256 amount
    );
    event WithdrawalProven(bytes32 indexed withdrawalHash, uint256 indexed outputIndex, address indexed l1Recipient);
    event WithdrawalFinalized(bytes32 indexed withdrawalHash, address indexed l1Recipient, uint8 asset, uint256 amount);

    constructor(
        IOutputOracle oracle_,
        IERC20 lumia_,
        address messagePasser_,
        DepositLimits memory limits,
        uint64 finalizationDelaySeconds_
    ) {
        if (address(oracle_) == address(0) || address(lumia_) == address(0) || messagePasser_ == address(0)) {
            revert ZeroAddress();
        }
        if (limits.minEth == 0 || limits.minEth > limits.maxEth || limits.minLumia == 0 || limits.minLumia > limits.maxLumia) {
            revert BadDepositLimits();
        }
        oracle = oracle_;
        lumia = lumia_;
        messagePasser = messagePasser_;
        finalizationDelaySeconds = finalizationDelaySeconds_;
        minDepositEth = limits.minEth;
        maxDepositEth = limits.maxEth;
        minDepositLumia = limits.minLumia;
        maxDepositLumia = limits.maxLumia;
        deployedAtBlock = block.number;
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Deposits

    function depositETH(address l2Recipient) external payable returns (uint64 nonce) {
        return _deposit(l2Recipient, ASSET_ETH, msg.value);
    }

    /// Pulls `amount` LUMIA from the sender (approved beforehand).
    function depositLumia(address l2Recipient, uint256 amount) external nonReentrant returns (uint64 nonce) {
        nonce = _deposit(l2Recipient, ASSET_LUMIA, amount);
        lumia.safeTransferFrom(msg.sender, address(this), amount);
    }

    function _deposit(address to, uint8 asset, uint256 amount) private returns (uint64 nonce) {
        if (to == address(0)) revert ZeroAddress();
        (uint256 min, uint256 max) =
            asset == ASSET_ETH ? (minDepositEth, maxDepositEth) : (minDepositLumia, maxDepositLumia);
        if (amount < min || amount > max) revert DepositOutOfRange(asset, amount, min, max);
        totalDeposited[asset] += amount;
        nonce = depositNonce++;
        emit DepositInitiated(nonce, msg.sender, to, asset, amount);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Withdrawals

    /// keccak256(abi.encode(nonce, sender, l1Recipient, asset, amount)), as L2MessagePasser computes it.
    function hashWithdrawal(Withdrawal calldata w) public pure returns (bytes32) {
        return keccak256(abi.encode(w.nonce, w.sender, w.l1Recipient, w.asset, w.amount));
    }

    /// Proves that `w` was initiated on the L2 in the state of output `outputIndex`: `header` is that output's block
    /// header, `accountProof` and `storageProof` what eth_getProof(messagePasser, [slot of sentMessages[hash]])
    /// returns at that block.
    function proveWithdrawal(
        Withdrawal calldata w,
        uint256 outputIndex,
        bytes calldata header,
        bytes[] calldata accountProof,
        bytes[] calldata storageProof
    ) external {
        if (w.asset >= ASSET_COUNT) revert UnknownAsset(w.asset);
        bytes32 withdrawalHash = hashWithdrawal(w);
        if (finalizedWithdrawals[withdrawalHash]) revert AlreadyFinalized(withdrawalHash);
        if (provenWithdrawals[withdrawalHash].provenAt != 0) revert AlreadyProven(withdrawalHash);
        if (accountProof.length > MAX_PROOF_NODES) revert ProofTooLong(accountProof.length, MAX_PROOF_NODES);
        if (storageProof.length > MAX_PROOF_NODES) revert ProofTooLong(storageProof.length, MAX_PROOF_NODES);
        _proveSent(_evmRootOf(outputIndex, header), withdrawalHash, accountProof, storageProof);
        provenWithdrawals[withdrawalHash] =
            ProvenWithdrawal({provenAt: uint64(block.timestamp), outputIndex: uint64(outputIndex)});
        emit WithdrawalProven(withdrawalHash, outputIndex, w.l1Recipient);
    }

    /// The EVM root of output `outputIndex`, whose block header `header` must be.
    function _evmRootOf(uint256 outputIndex, bytes calldata header) private view returns (bytes32) {
        uint256 count = oracle.outputCount();
        if (outputIndex >= count) revert UnknownOutput(outputIndex, count);
        L2Output memory output = oracle.outputAt(outputIndex);
        bytes32 headerHash = keccak256(header);
        if (headerHash != output.blockHash) revert HeaderMismatch(headerHash, output.blockHash);
        return output.evmRoot;
    }

    /// Reverts unless the proofs show `sentMessages[withdrawalHash] == true` in the message passer under `evmRoot`.
    function _proveSent(
        bytes32 evmRoot,
        bytes32 withdrawalHash,
        bytes[] calldata accountProof,
        bytes[] calldata storageProof
    ) private view {
        (bytes memory account, uint8 accountError) =
            _traverse(evmRoot, abi.encodePacked(keccak256(abi.encodePacked(messagePasser))), accountProof);
        if (accountError != 0) revert InvalidAccountProof(accountError);
        bytes32 storageRoot = _storageRoot(account);
        bytes32 slot = keccak256(abi.encode(withdrawalHash, SENT_MESSAGES_SLOT));
        (bytes memory value, uint8 storageError) =
            _traverse(storageRoot, abi.encodePacked(keccak256(abi.encode(slot))), storageProof);
        if (storageError != 0) revert InvalidStorageProof(storageError);
        // The trie stores RLP(value with leading zeros removed): `true` is the single byte 0x01.
        if (value.length != 1 || value[0] != 0x01) revert WithdrawalNotSent(withdrawalHash);
    }

    /// Pays a withdrawal proven at least `finalizationDelaySeconds` ago to its recipient. Anyone may call.
    function finalizeWithdrawal(Withdrawal calldata w) external nonReentrant {
        if (w.asset >= ASSET_COUNT) revert UnknownAsset(w.asset);
        bytes32 withdrawalHash = hashWithdrawal(w);
        if (finalizedWithdrawals[withdrawalHash]) revert AlreadyFinalized(withdrawalHash);
        uint256 provenAt = provenWithdrawals[withdrawalHash].provenAt;
        if (provenAt == 0) revert NotProven(withdrawalHash);
        uint256 readyAt = provenAt + finalizationDelaySeconds;
        if (block.timestamp < readyAt) revert TooEarly(withdrawalHash, readyAt, block.timestamp);
        uint256 available = totalDeposited[w.asset] - totalWithdrawn[w.asset];
        if (w.amount > available) revert InsufficientBridgeBalance(w.asset, w.amount, available);

        finalizedWithdrawals[withdrawalHash] = true;
        totalWithdrawn[w.asset] += w.amount;
        emit WithdrawalFinalized(withdrawalHash, w.l1Recipient, w.asset, w.amount);
        if (w.asset == ASSET_ETH) {
            (bool ok,) = w.l1Recipient.call{value: w.amount}("");
            if (!ok) revert PaymentFailed(w.l1Recipient, w.amount);
        } else {
            lumia.safeTransfer(w.l1Recipient, w.amount);
        }
    }

    /// TrieProof.tryTraverse, exposed so that `_traverse` can call it in a try: on some malformed nodes it reverts
    /// inside its RLP decoder instead of returning an error, and every refusal here must be this contract's own.
    function traverseProof(bytes32 root, bytes calldata key, bytes[] calldata proof)
        external
        pure
        returns (bytes memory value, TrieProof.ProofError err)
    {
        return TrieProof.tryTraverse(root, key, proof);
    }

    /// The proven value and 0, or empty and the TrieProof.ProofError (UNPARSEABLE_NODE when the decoder reverted).
    function _traverse(bytes32 root, bytes memory key, bytes[] calldata proof)
        private
        view
        returns (bytes memory value, uint8 err)
    {
        try this.traverseProof(root, key, proof) returns (bytes memory v, TrieProof.ProofError e) {
            return (v, uint8(e));
        } catch {
            return ("", uint8(TrieProof.ProofError.UNPARSEABLE_NODE));
        }
    }

    /// The storage root of an RLP account [nonce, balance, storageRoot, codeHash]. The account proof verified, so
    /// these bytes are a leaf of a certified state trie: an account's RLP.
    function _storageRoot(bytes memory account) private pure returns (bytes32) {
        Memory.Slice[] memory fields = account.decodeList();
        if (fields.length != 4) revert MalformedAccount();
        return fields[2].readBytes32();
    }
}
