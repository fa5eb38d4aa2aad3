// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {BLS} from "./BLS.sol";
import {ISequencerRegistry, IStaking, Member} from "./Interfaces.sol";

/// @title Sequencer registry: approved operators, their consensus keys, and the validator set of every epoch.
/// @notice Governance (GOVERNOR_ROLE, a multisig) approves operators. An approved operator registers one sequencer:
/// its BLS key with a proof of possession verified here, its libp2p peer id, and an initial commission. Epochs are a
/// fixed number of L1 blocks; anyone may call `advanceEpoch()` once the current one has lasted that long, and that
/// call snapshots the next epoch's set. Joins, exits, jailing, revocations and stake changes take effect at that
/// boundary only. The set is ordered exactly as consensus/validator-set.ts orders one (power descending, then
/// consensus address ascending) and its id is `computeValidatorSetId`.
contract SequencerRegistry is ISequencerRegistry, AccessControl {
    using SafeCast for uint256;

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    /// Held by the Slashing contract: may jail.
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    /// keccak256("lumia.dcn.v1.validator-set"), the domain of the validator-set id (docs/validator-sets.md).
    bytes32 public constant VALIDATOR_SET_DOMAIN = keccak256("lumia.dcn.v1.validator-set");

    /// Sequencers registered and not exited: bounds the loop of `advanceEpoch`.
    uint256 public constant MAX_SEQUENCERS = 128;
    /// Upper bound of `maxValidators`: bounds the certificate loop and the per-epoch storage.
    uint256 public constant MAX_VALIDATORS_LIMIT = 100;
    /// A libp2p peer id multihash (an Ed25519 id is 38 bytes); the genesis allows up to 64.
    uint256 public constant MAX_PEER_ID_LENGTH = 64;
    uint256 private constant WEI_PER_POWER = 1e18;

    enum Status {
        None,
        Active,
        Exiting,
        Exited
    }

    struct Sequencer {
        address operator;
        Status status;
        bool jailed;
        uint64 registeredEpoch;
        /// Last 20 bytes of keccak256(compressed public key): the consensus address (set order tie-break).
        address consensusAddress;
        bytes peerId;
    }

    /// The compressed key (48 bytes) and the uncompressed EIP-2537 point (x, y as 64-byte padded elements), laid out
    /// so that aggregation reads three slots per signer (xLo, yLo, xHi|yHi).
    struct Key {
        bytes32 compressedHead;
        bytes32 xLo;
        bytes32 yLo;
        uint128 xHi;
        uint128 yHi;
        bytes16 compressedTail;
    }

    struct EpochInfo {
        uint64 startBlock;
        uint64 totalPower;
        uint32 size;
        bytes32 setId;
    }

    struct Registration {
        /// 48-byte compressed G1 key.
        bytes publicKey;
        /// The same key as a 128-byte EIP-2537 G1 point.
        bytes publicKeyG1;
        /// 96-byte compressed G2 proof of possession: sk * H_pop(publicKey), DST BLS_POP_....
        bytes proofOfPossession;
        /// The same proof as a 256-byte EIP-2537 G2 point.
        bytes proofOfPossessionG2;
        bytes peerId;
        uint16 commissionBps;
    }

    struct Parameters {
        uint256 minSelfStake;
        uint32 maxValidators;
    }

    error ZeroAddress();
    error StakingAlreadySet();
    error StakingNotSet();
    error OperatorNotApproved(address operator);
    error AlreadyRegistered(address operator, uint32 sequencerId);
    error KeyAlreadyRegistered(bytes32 keyHash);
    error PeerIdAlreadyRegistered(bytes32 peerIdHash);
    error KeyEncodingMismatch();
    error InvalidProofOfPossession();
    error BadPeerIdLength(uint256 length);
    error TooManySequencers(uint256 max);
    error NotRegistered(address operator);
    error UnknownSequencer(uint32 sequencerId);
    error SequencerNotActive(uint32 sequencerId);
    error NotJailed(uint32 sequencerId);
    error EpochNotOver(uint256 nextEpochBlock, uint256 currentBlock);
    error UnknownEpoch(uint64 epoch);
    error BadSignerBitmap();
    error InsufficientSigningPower(uint256 signingPower, uint256 totalPower);
    error SignatureEncodingMismatch();
    error InvalidSignature();
    error MaxValidatorsOutOfRange(uint256 value, uint256 limit);

    event OperatorApproved(address indexed operator);
    event OperatorRevoked(address indexed operator);
    event SequencerRegistered(
        uint32 indexed sequencerId,
        address indexed operator,
        bytes publicKey,
        address consensusAddress,
        bytes peerId,
        uint64 epoch
    );
    event PeerIdChanged(uint32 indexed sequencerId, bytes peerId);
    event ExitRequested(uint32 indexed sequencerId, uint64 effectiveEpoch);
    event SequencerExited(uint32 indexed sequencerId, uint64 epoch);
    event Jailed(uint32 indexed sequencerId, uint64 epoch);
    event Unjailed(uint32 indexed sequencerId, uint64 epoch);
    event ParametersChanged(uint256 minSelfStake, uint32 maxValidators);
    /// The whole new set in one log: the node rebuilds it (keys, powers, order) and checks `setId`.
    event EpochAdvanced(
        uint64 indexed epoch,
        uint64 startBlock,
        bytes32 setId,
        uint64 totalPower,
        uint32[] sequencerIds,
        bytes[] publicKeys,
        uint64[] powers
    );

    uint64 public immutable epochLengthBlocks;
    IStaking public staking;
    uint256 public minSelfStake;
    uint32 public maxValidators;
    uint64 public currentEpoch;
    uint32 public sequencerCount;

    mapping(address operator => bool) public approved;
    mapping(address operator => uint32) public sequencerIdOf;
    mapping(bytes32 keyHash => uint32) public sequencerIdOfKey;
    mapping(bytes32 peerIdHash => uint32) public sequencerIdOfPeer;
    mapping(uint32 sequencerId => Sequencer) private _sequencers;
    mapping(uint32 sequencerId => Key) private _keys;
    /// Active and Exiting sequencers: the candidates of the next set.
    uint32[] private _candidates;
    mapping(uint64 epoch => EpochInfo) private _epochs;
    mapping(uint64 epoch => Member[]) private _members;

    constructor(address governance, uint64 epochLengthBlocks_, Parameters memory params) {
        if (governance == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, governance);
        _grantRole(GOVERNOR_ROLE, governance);
        epochLengthBlocks = epochLengthBlocks_;
        _setParameters(params);
        _epochs[0] = EpochInfo({startBlock: uint64(block.number), totalPower: 0, size: 0, setId: bytes32(0)});
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Governance

    /// Wires the Staking contract (deployed after this one, as it reads the registry). Once.
    function setStaking(IStaking staking_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(staking_) == address(0)) revert ZeroAddress();
        if (address(staking) != address(0)) revert StakingAlreadySet();
        staking = staking_;
    }

    function approveOperator(address operator) external onlyRole(GOVERNOR_ROLE) {
        if (operator == address(0)) revert ZeroAddress();
        approved[operator] = true;
        emit OperatorApproved(operator);
    }

    /// The operator's sequencer leaves the set at the next boundary and cannot take new stake until re-approved.
    function revokeOperator(address operator) external onlyRole(GOVERNOR_ROLE) {
        approved[operator] = false;
        emit OperatorRevoked(operator);
    }

    function setParameters(Parameters calldata params) external onlyRole(GOVERNOR_ROLE) {
        _setParameters(params);
    }

    function unjail(uint32 sequencerId) external onlyRole(GOVERNOR_ROLE) {
        Sequencer storage s = _sequencer(sequencerId);
        if (!s.jailed) revert NotJailed(sequencerId);
        s.jailed = false;
        emit Unjailed(sequencerId, currentEpoch);
    }

    function jail(uint32 sequencerId) external onlyRole(SLASHER_ROLE) {
        _sequencer(sequencerId).jailed = true;
        emit Jailed(sequencerId, currentEpoch);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Operators

    /// Registers the caller's sequencer. It becomes a candidate at the next boundary (with enough self-stake).
    function register(Registration calldata r) external returns (uint32 sequencerId) {
        if (address(staking) == address(0)) revert StakingNotSet();
        if (!approved[msg.sender]) revert OperatorNotApproved(msg.sender);
        if (sequencerIdOf[msg.sender] != 0) revert AlreadyRegistered(msg.sender, sequencerIdOf[msg.sender]);
        if (_candidates.length >= MAX_SEQUENCERS) revert TooManySequencers(MAX_SEQUENCERS);
        if (!BLS.g1Matches(r.publicKey, r.publicKeyG1) || !BLS.g2Matches(r.proofOfPossession, r.proofOfPossessionG2)) {
            revert KeyEncodingMismatch();
        }
        bytes32 keyHash = keccak256(r.publicKey);
        if (sequencerIdOfKey[keyHash] != 0) revert KeyAlreadyRegistered(keyHash);
        bytes32 peerHash = _checkPeerId(r.peerId);
        // The pairing check also proves the key is on the curve and in the prime-order subgroup.
        if (!BLS.verify(r.publicKeyG1, r.publicKey, r.proofOfPossessionG2, BLS.POP_DST)) {
            revert InvalidProofOfPossession();
        }

        sequencerId = ++sequencerCount;
        sequencerIdOf[msg.sender] = sequencerId;
        sequencerIdOfKey[keyHash] = sequencerId;
        sequencerIdOfPeer[peerHash] = sequencerId;
        address consensusAddress = address(uint160(uint256(keyHash)));
        _sequencers[sequencerId] = Sequencer({
            operator: msg.sender,
            status: Status.Active,
            jailed: false,
            registeredEpoch: currentEpoch,
            consensusAddress: consensusAddress,
            peerId: r.peerId
        });
        _keys[sequencerId] = Key({
            compressedHead: bytes32(r.publicKey[0:32]),
            compressedTail: bytes16(r.publicKey[32:48]),
            xHi: uint128(uint256(bytes32(r.publicKeyG1[0:32]))),
            xLo: bytes32(r.publicKeyG1[32:64]),
            yHi: uint128(uint256(bytes32(r.publicKeyG1[64:96]))),
            yLo: bytes32(r.publicKeyG1[96:128])
        });
        _candidates.push(sequencerId);
        staking.initPool(sequencerId, msg.sender, r.commissionBps);
        emit SequencerRegistered(sequencerId, msg.sender, r.publicKey, consensusAddress, r.peerId, currentEpoch);
    }

    function setPeerId(bytes calldata peerId) external {
        uint32 id = _ownSequencer();
        Sequencer storage s = _sequencers[id];
        bytes32 peerHash = _checkPeerId(peerId);
        delete sequencerIdOfPeer[keccak256(s.peerId)];
        sequencerIdOfPeer[peerHash] = id;
        s.peerId = peerId;
        emit PeerIdChanged(id, peerId);
    }

    /// Leaves the set at the next boundary; final (the key cannot be registered again). Stake stays withdrawable.
    function requestExit() external {
        uint32 id = _ownSequencer();
        Sequencer storage s = _sequencers[id];
        if (s.status != Status.Active) revert SequencerNotActive(id);
        s.status = Status.Exiting;
        emit ExitRequested(id, currentEpoch + 1);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Epochs

    function nextEpochBlock() public view returns (uint256) {
        return uint256(_epochs[currentEpoch].startBlock) + epochLengthBlocks;
    }

    /// Starts the next epoch once the current one has lasted `epochLengthBlocks`, and snapshots its set: the top
    /// `maxValidators` of the approved, active, non-jailed sequencers whose self-stake is at least `minSelfStake` and
    /// whose power is at least 1, in consensus order. Exiting sequencers leave here. Permissionless.
    function advanceEpoch() external returns (uint64 epoch) {
        if (block.number < nextEpochBlock()) revert EpochNotOver(nextEpochBlock(), block.number);
        if (address(staking) == address(0)) revert StakingNotSet();
        epoch = currentEpoch + 1;
        currentEpoch = epoch;
        (Member[] memory ranked, uint256 n) = _rankCandidates(epoch);
        _storeSet(epoch, ranked, n < maxValidators ? n : maxValidators);
    }

    /// Drops exiting candidates (they leave now) and ranks the eligible ones in consensus order: returns them with
    /// their count in the first `n` entries.
    function _rankCandidates(uint64 epoch) private returns (Member[] memory ranked, uint256 n) {
        ranked = new Member[](_candidates.length);
        address[] memory rankedAddress = new address[](_candidates.length);
        uint256 i = 0;
        while (i < _candidates.length) {
            uint32 id = _candidates[i];
            Sequencer storage s = _sequencers[id];
            if (s.status == Status.Exiting) {
                s.status = Status.Exited;
                _candidates[i] = _candidates[_candidates.length - 1];
                _candidates.pop();
                emit SequencerExited(id, epoch);
                continue; // the swapped-in candidate is at i now
            }
            i++;
            if (s.jailed || !approved[s.operator]) continue;
            (uint256 selfStake, uint256 totalStake, uint16 commissionBps) = staking.snapshotOf(id);
            uint256 power = totalStake / WEI_PER_POWER;
            if (selfStake < minSelfStake || power == 0) continue;
            // Insertion into the ranked prefix: power descending, then consensus address ascending.
            address addr = s.consensusAddress;
            uint256 j = n;
            while (j > 0 && _before(power, addr, ranked[j - 1].power, rankedAddress[j - 1])) {
                ranked[j] = ranked[j - 1];
                rankedAddress[j] = rankedAddress[j - 1];
                j--;
            }
            ranked[j] = Member({
                sequencerId: id,
                power: power.toUint64(),
                commissionBps: commissionBps,
                stake: totalStake.toUint128()
            });
            rankedAddress[j] = addr;
            n++;
        }
    }

    /// Stores the first `size` ranked members as `epoch`'s set, computes its id and announces it.
    function _storeSet(uint64 epoch, Member[] memory ranked, uint256 size) private {
        Member[] storage members = _members[epoch];
        uint32[] memory ids = new uint32[](size);
        bytes[] memory keys = new bytes[](size);
        uint64[] memory powers = new uint64[](size);
        // id preimage: D (32) || (pk 48 || power u64 8) per validator, as abi.encodePacked would give it. Each entry
        // is written as two words, the second spilling 8 zero bytes into the next entry (overwritten by it) or, for
        // the last one, into 8 bytes of slack allocated for that and cut off by the final length.
        bytes memory preimage = new bytes(32 + 56 * size + 8);
        uint256 totalPower = 0;
        bytes32 domain = VALIDATOR_SET_DOMAIN;
        assembly ("memory-safe") {
            mstore(add(preimage, 0x20), domain)
            mstore(preimage, sub(mload(preimage), 8))
        }
        for (uint256 k = 0; k < size; k++) {
            Member memory m = ranked[k];
            members.push(m);
            ids[k] = m.sequencerId;
            powers[k] = m.power;
            totalPower += m.power;
            Key storage key = _keys[m.sequencerId];
            bytes32 head = key.compressedHead;
            bytes16 tail = key.compressedTail;
            uint64 power = m.power;
            keys[k] = abi.encodePacked(head, tail);
            assembly ("memory-safe") {
                let p := add(add(preimage, 0x40), mul(56, k))
                mstore(p, head)
                let tailBits := and(tail, not(0xffffffffffffffffffffffffffffffff))
                mstore(add(p, 32), or(tailBits, shl(64, and(power, 0xffffffffffffffff))))
            }
        }
        bytes32 setId = keccak256(preimage);
        _epochs[epoch] = EpochInfo({
            startBlock: uint64(block.number),
            totalPower: totalPower.toUint64(),
            size: uint32(size),
            setId: setId
        });
        emit EpochAdvanced(epoch, uint64(block.number), setId, uint64(totalPower), ids, keys, powers);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Certificates and signatures of an epoch's set

    /// Verifies a certificate of `epoch`'s set over `digest`: `signers` is the bitmap (bit i = byte i >> 3, mask
    /// 1 << (i & 7), ceil(n/8) bytes, no bit at or above n), `signature` the 96-byte compressed aggregate and
    /// `signatureG2` the same point as 256 EIP-2537 bytes. Reverts unless the signers hold more than 2/3 of the power
    /// and e(sum of their keys, H(digest)) == e(G1, signature) with the signature DST.
    function verifyCertificate(
        uint64 epoch,
        bytes32 digest,
        bytes calldata signers,
        bytes calldata signature,
        bytes calldata signatureG2
    ) external view returns (uint64 signingPower, uint64 totalPower) {
        EpochInfo storage info = _epochs[epoch];
        uint256 n = info.size;
        if (n == 0) revert UnknownEpoch(epoch);
        if (signers.length != (n + 7) / 8) revert BadSignerBitmap();
        if (n % 8 != 0 && uint8(signers[n / 8]) >> (n % 8) != 0) revert BadSignerBitmap();
        Member[] storage members = _members[epoch];
        bytes memory aggregate;
        uint256 power = 0;
        for (uint256 i = 0; i < n; i++) {
            if (uint8(signers[i >> 3]) & (1 << (i & 7)) == 0) continue;
            Member storage m = members[i];
            power += m.power;
            bytes memory key = _point(m.sequencerId);
            if (aggregate.length == 0) {
                aggregate = key;
            } else {
                bool ok;
                (ok, aggregate) = BLS.addG1(aggregate, key);
                if (!ok) revert InvalidSignature();
            }
        }
        totalPower = info.totalPower;
        if (power * 3 <= uint256(totalPower) * 2) revert InsufficientSigningPower(power, totalPower);
        if (!BLS.g2Matches(signature, signatureG2)) revert SignatureEncodingMismatch();
        if (!BLS.verify(aggregate, abi.encodePacked(digest), signatureG2, BLS.SIG_DST)) {
            revert InvalidSignature();
        }
        signingPower = uint64(power);
    }

    /// Whether member `index` of `epoch`'s set signed `digest` (signature DST). False on any malformed input.
    function verifyMemberSignature(
        uint64 epoch,
        uint256 index,
        bytes32 digest,
        bytes calldata signature,
        bytes calldata signatureG2
    ) external view returns (bool) {
        if (index >= _epochs[epoch].size) return false;
        if (!BLS.g2Matches(signature, signatureG2)) return false;
        bytes memory key = _point(_members[epoch][index].sequencerId);
        return BLS.verify(key, abi.encodePacked(digest), signatureG2, BLS.SIG_DST);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Views

    function isOpen(uint32 sequencerId) external view returns (bool) {
        Sequencer storage s = _sequencers[sequencerId];
        return s.status == Status.Active && approved[s.operator];
    }

    function isJailed(uint32 sequencerId) external view returns (bool) {
        return _sequencers[sequencerId].jailed;
    }

    function operatorOf(uint32 sequencerId) external view returns (address) {
        return _sequencers[sequencerId].operator;
    }

    function sequencer(uint32 sequencerId) external view returns (Sequencer memory) {
        return _sequencers[sequencerId];
    }

    function publicKeyOf(uint32 sequencerId) public view returns (bytes memory) {
        Key storage key = _keys[sequencerId];
        if (key.compressedHead == 0) return "";
        return abi.encodePacked(key.compressedHead, key.compressedTail);
    }

    function candidates() external view returns (uint32[] memory) {
        return _candidates;
    }

    function epochInfo(uint64 epoch) external view returns (EpochInfo memory) {
        return _epochs[epoch];
    }

    function epochSize(uint64 epoch) external view returns (uint256) {
        return _epochs[epoch].size;
    }

    function epochMembers(uint64 epoch) external view returns (Member[] memory) {
        return _members[epoch];
    }

    function memberOf(uint64 epoch, uint256 index) external view returns (Member memory) {
        return _members[epoch][index];
    }

    /// The epoch's set as the node builds one: keys and powers in set order, and its id.
    function validatorSet(uint64 epoch)
        external
        view
        returns (bytes[] memory publicKeys, uint64[] memory powers, bytes32 setId)
    {
        Member[] storage members = _members[epoch];
        publicKeys = new bytes[](members.length);
        powers = new uint64[](members.length);
        for (uint256 i = 0; i < members.length; i++) {
            publicKeys[i] = publicKeyOf(members[i].sequencerId);
            powers[i] = members[i].power;
        }
        setId = _epochs[epoch].setId;
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Internals

    function _setParameters(Parameters memory params) private {
        if (params.maxValidators == 0 || params.maxValidators > MAX_VALIDATORS_LIMIT) {
            revert MaxValidatorsOutOfRange(params.maxValidators, MAX_VALIDATORS_LIMIT);
        }
        minSelfStake = params.minSelfStake;
        maxValidators = params.maxValidators;
        emit ParametersChanged(params.minSelfStake, params.maxValidators);
    }

    function _sequencer(uint32 sequencerId) private view returns (Sequencer storage s) {
        s = _sequencers[sequencerId];
        if (s.status == Status.None) revert UnknownSequencer(sequencerId);
    }

    function _ownSequencer() private view returns (uint32 id) {
        id = sequencerIdOf[msg.sender];
        if (id == 0) revert NotRegistered(msg.sender);
    }

    function _checkPeerId(bytes calldata peerId) private view returns (bytes32 peerHash) {
        if (peerId.length == 0 || peerId.length > MAX_PEER_ID_LENGTH) revert BadPeerIdLength(peerId.length);
        peerHash = keccak256(peerId);
        if (sequencerIdOfPeer[peerHash] != 0) revert PeerIdAlreadyRegistered(peerHash);
    }

    /// The stored key as a 128-byte EIP-2537 point.
    function _point(uint32 sequencerId) private view returns (bytes memory) {
        Key storage key = _keys[sequencerId];
        return abi.encodePacked(uint256(key.xHi), key.xLo, uint256(key.yHi), key.yLo);
    }

    /// Power descending, then consensus address ascending (consensus/validator-set.ts).
    function _before(uint256 powerA, address addrA, uint256 powerB, address addrB) private pure returns (bool) {
        return powerA > powerB || (powerA == powerB && addrA < addrB);
    }
}
