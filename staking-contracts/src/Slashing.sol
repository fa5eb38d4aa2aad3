// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ISequencerRegistry, IStaking, Member} from "./Interfaces.sol";

/// @title Slashing: on-chain evidence of equivocation.
/// @notice Evidence is two SignedVote encodings (the node's 145-byte wire format, docs/protocol.md) by the same
/// validator index of an epoch's set, with the same type, height and round and different values (a nil vote counts as
/// a value), both signatures valid over consensus/signing.ts voteDigest under this subnet's chain id. The signer is
/// the sequencer holding that key, whatever the height: a key signs two conflicting votes only if its owner did.
/// Evidence is accepted while the stake of its epoch cannot have been withdrawn yet (`epoch + unbondingEpochs >
/// currentEpoch`). It slashes `slashBps` of the pool (active and unbonding stake, every staker pro rata), jails the
/// sequencer (out of the next set until governance unjails it), and is refused a second time: once per (sequencer,
/// vote type, height, round), and at most one slash per (sequencer, epoch) however many votes conflict.
contract Slashing {
    bytes32 public constant PREVOTE_DOMAIN = keccak256("lumia.dcn.v1.prevote");
    bytes32 public constant PRECOMMIT_DOMAIN = keccak256("lumia.dcn.v1.precommit");
    uint256 public constant SIGNED_VOTE_LENGTH = 145;
    uint256 public constant MAX_SLASH_BPS = 5_000;
    /// Heights are safe JavaScript integers on the wire.
    uint64 private constant MAX_HEIGHT = 2 ** 53 - 1;

    /// A vote as decoded from its 145 bytes: version 1 | type | height | round | hasValue | value | index | signature.
    struct Vote {
        uint8 voteType;
        uint64 height;
        uint32 round;
        bool hasValue;
        bytes32 value;
        uint16 validatorIndex;
    }

    /// One signed vote: its wire encoding (whose last 96 bytes are the compressed signature) and that signature as a
    /// 256-byte EIP-2537 point.
    struct SignedVoteEvidence {
        bytes encoded;
        bytes signatureG2;
    }

    error BadSlashFraction(uint256 bps);
    error MalformedVote(uint8 which);
    error VotesDoNotConflict();
    error UnknownEpoch(uint64 epoch, uint64 currentEpoch);
    error EvidenceTooOld(uint64 epoch, uint64 currentEpoch);
    error BadValidatorIndex(uint256 index, uint256 size);
    error EvidenceAlreadyUsed(bytes32 evidenceId);
    error AlreadySlashed(uint32 sequencerId, uint64 epoch);
    error InvalidVoteSignature(uint8 which);

    event EquivocationSlashed(
        uint32 indexed sequencerId,
        uint64 indexed epoch,
        bytes32 evidenceId,
        uint8 voteType,
        uint64 height,
        uint32 round,
        bytes32 valueA,
        bytes32 valueB,
        uint256 slashedAmount
    );

    ISequencerRegistry public immutable registry;
    IStaking public immutable staking;
    uint64 public immutable chainId;
    uint16 public immutable slashBps;

    mapping(bytes32 evidenceId => bool) public evidenceUsed;
    mapping(uint32 sequencerId => mapping(uint64 epoch => bool)) public slashedInEpoch;

    constructor(ISequencerRegistry registry_, IStaking staking_, uint64 chainId_, uint16 slashBps_) {
        if (slashBps_ == 0 || slashBps_ > MAX_SLASH_BPS) revert BadSlashFraction(slashBps_);
        registry = registry_;
        staking = staking_;
        chainId = chainId_;
        slashBps = slashBps_;
    }

    /// keccak256(domain[type] || chainId u64 || height u64 || round u32 || value 32): consensus/signing.ts voteDigest.
    function voteDigest(uint8 voteType, uint64 height, uint32 round, bytes32 value) public view returns (bytes32) {
        bytes32 domain = voteType == 1 ? PREVOTE_DOMAIN : PRECOMMIT_DOMAIN;
        return keccak256(abi.encodePacked(domain, chainId, height, round, value));
    }

    /// Slashes and jails the validator at `a`'s index of `epoch`'s set if `a` and `b` prove it equivocated.
    function submitEvidence(uint64 epoch, SignedVoteEvidence calldata a, SignedVoteEvidence calldata b)
        external
        returns (uint32 sequencerId, uint256 slashed)
    {
        Vote memory va = _decode(a.encoded, 0);
        Vote memory vb = _decode(b.encoded, 1);
        if (
            va.voteType != vb.voteType || va.height != vb.height || va.round != vb.round
                || va.validatorIndex != vb.validatorIndex || (va.hasValue == vb.hasValue && va.value == vb.value)
        ) revert VotesDoNotConflict();

        uint64 current = registry.currentEpoch();
        if (epoch == 0 || epoch > current) revert UnknownEpoch(epoch, current);
        if (uint256(epoch) + staking.unbondingEpochs() <= current) revert EvidenceTooOld(epoch, current);
        uint256 size = registry.epochSize(epoch);
        if (va.validatorIndex >= size) revert BadValidatorIndex(va.validatorIndex, size);
        Member memory m = registry.memberOf(epoch, va.validatorIndex);
        sequencerId = m.sequencerId;

        // Cheap refusals first: a replay costs no pairing.
        bytes32 evidenceId = keccak256(abi.encode(sequencerId, va.voteType, va.height, va.round));
        if (evidenceUsed[evidenceId]) revert EvidenceAlreadyUsed(evidenceId);
        if (slashedInEpoch[sequencerId][epoch]) revert AlreadySlashed(sequencerId, epoch);

        _checkSignature(epoch, va, a, 0);
        _checkSignature(epoch, vb, b, 1);

        evidenceUsed[evidenceId] = true;
        slashedInEpoch[sequencerId][epoch] = true;
        slashed = staking.slash(sequencerId, slashBps);
        registry.jail(sequencerId);
        emit EquivocationSlashed(
            sequencerId, epoch, evidenceId, va.voteType, va.height, va.round, va.value, vb.value, slashed
        );
    }

    function _checkSignature(uint64 epoch, Vote memory v, SignedVoteEvidence calldata e, uint8 which) private view {
        bytes32 digest = voteDigest(v.voteType, v.height, v.round, v.value);
        if (!registry.verifyMemberSignature(epoch, v.validatorIndex, digest, e.encoded[49:145], e.signatureG2)) {
            revert InvalidVoteSignature(which);
        }
    }

    /// Decodes a SignedVote with the node's rules (consensus/wire.ts): version 1, type 1 (prevote) or 2 (precommit),
    /// hasValue 0 or 1, nil with zero value bytes, a value never zero, height at most 2^53 - 1.
    function _decode(bytes calldata encoded, uint8 which) private pure returns (Vote memory v) {
        if (encoded.length != SIGNED_VOTE_LENGTH || uint8(encoded[0]) != 1) revert MalformedVote(which);
        v.voteType = uint8(encoded[1]);
        v.height = uint64(bytes8(encoded[2:10]));
        v.round = uint32(bytes4(encoded[10:14]));
        uint8 hasValue = uint8(encoded[14]);
        v.value = bytes32(encoded[15:47]);
        v.validatorIndex = uint16(bytes2(encoded[47:49]));
        v.hasValue = hasValue == 1;
        if (v.voteType != 1 && v.voteType != 2) revert MalformedVote(which);
        if (hasValue > 1 || v.hasValue == (v.value == 0) || v.height > MAX_HEIGHT) revert MalformedVote(which);
    }
}
