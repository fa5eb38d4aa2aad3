// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IRewards, ISequencerRegistry, IStaking, Member} from "./Interfaces.sol";

/// @title Rewards: per-epoch LUMIA emission, paid for certified work and stake.
/// @notice Governance funds the emission in advance (`fund`). After an epoch ends, anyone submits its work report
/// (per validator of the epoch's set, in set order: blocks proposed, certified precommits signed, batches posted)
/// with a certificate of that epoch's set: a signer bitmap and a BLS aggregate over `workReportDigest`, by more than
/// 2/3 of the epoch's power, verified on chain by the registry. Each epoch's report is accepted once. The emission is
/// split: `workShareBps` by work score, the rest by the epoch's stake snapshot. From each validator's part the
/// commission (snapshotted at the epoch start) goes to its operator; the rest goes to the pool's stakers through a
/// reward-per-share accumulator (`ACC_SCALE`), claimed or compounded at any time. Rounding dust (at most one wei per
/// distribution and per settlement, always down) stays here, unclaimable: the invariant test counts it.
contract Rewards is IRewards, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    /// keccak256("lumia.dcn.v1.work-report"): the signing domain of work reports (docs/protocol.md).
    bytes32 public constant WORK_REPORT_DOMAIN = keccak256("lumia.dcn.v1.work-report");
    uint256 public constant ACC_SCALE = 1e36;
    uint256 public constant BPS = 10_000;

    /// One validator's work in an epoch; entry i is validator i of the epoch's set.
    struct WorkEntry {
        uint64 blocksProposed;
        uint64 precommitsSigned;
        uint64 batchesPosted;
    }

    /// Score = blocksProposed * w.blocksProposed + precommitsSigned * w.precommitsSigned + batchesPosted * w.batches.
    struct WorkWeights {
        uint64 blocksProposed;
        uint64 precommitsSigned;
        uint64 batchesPosted;
    }

    /// A certificate of the epoch's set over the report digest (see SequencerRegistry.verifyCertificate).
    struct Certificate {
        bytes signers;
        bytes signature;
        bytes signatureG2;
    }

    struct Account {
        uint256 accSnapshot;
        uint256 credited;
    }

    error ZeroAddress();
    error NotStaking();
    error EpochNotFinished(uint64 epoch, uint64 currentEpoch);
    error ReportAlreadyAccepted(uint64 epoch);
    error ReportSizeMismatch(uint256 entries, uint256 validators);
    error InsufficientFunding(uint256 available, uint256 required);
    error NothingToClaim(address account);
    error BadWorkShare(uint256 bps);

    event Funded(address indexed from, uint256 amount);
    event ReportAccepted(
        uint64 indexed epoch,
        bytes32 digest,
        bytes signers,
        bytes signature,
        uint64 signingPower,
        uint64 totalPower,
        uint256 distributed
    );
    event RewardDistributed(
        uint64 indexed epoch, uint32 indexed sequencerId, uint256 score, uint256 reward, uint256 commission
    );
    /// A jailed validator's (or an empty pool's) part of an epoch returns to the unallocated funds.
    event RewardForfeited(uint64 indexed epoch, uint32 indexed sequencerId, uint256 reward);
    event Claimed(uint32 indexed sequencerId, address indexed account, uint256 amount);
    event Compounded(uint32 indexed sequencerId, address indexed account, uint256 amount);
    event CommissionClaimed(address indexed operator, uint256 amount);
    event EmissionChanged(uint256 emissionPerEpoch, uint16 workShareBps, WorkWeights weights);

    IERC20 public immutable token;
    ISequencerRegistry public immutable registry;
    IStaking public immutable staking;
    /// The subnet's chain id: the work-report digest commits to it.
    uint64 public immutable chainId;

    uint256 public emissionPerEpoch;
    uint16 public workShareBps;
    WorkWeights public workWeights;

    /// Funded and not yet distributed.
    uint256 public unallocated;
    /// Commission owed to operators, in total and each.
    uint256 public commissionOwed;
    mapping(address operator => uint256) public commissionOf;
    mapping(uint32 sequencerId => uint256) public accRewardPerShare;
    mapping(uint32 sequencerId => mapping(address account => Account)) private _accounts;
    mapping(uint64 epoch => bool) public reportAccepted;

    constructor(
        address governance,
        IERC20 token_,
        ISequencerRegistry registry_,
        IStaking staking_,
        uint64 chainId_,
        uint256 emissionPerEpoch_,
        uint16 workShareBps_,
        WorkWeights memory weights
    ) {
        if (governance == address(0) || address(token_) == address(0)) revert ZeroAddress();
        if (address(registry_) == address(0) || address(staking_) == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, governance);
        _grantRole(GOVERNOR_ROLE, governance);
        token = token_;
        registry = registry_;
        staking = staking_;
        chainId = chainId_;
        _setEmission(emissionPerEpoch_, workShareBps_, weights);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Funding and governance

    function fund(uint256 amount) external nonReentrant {
        unallocated += amount;
        token.safeTransferFrom(msg.sender, address(this), amount);
        emit Funded(msg.sender, amount);
    }

    function setEmission(uint256 emissionPerEpoch_, uint16 workShareBps_, WorkWeights calldata weights)
        external
        onlyRole(GOVERNOR_ROLE)
    {
        _setEmission(emissionPerEpoch_, workShareBps_, weights);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Reports

    /// keccak256(WORK_REPORT_DOMAIN || chainId u64 || epoch u64 || keccak256(abi.encode(entries))): what the
    /// epoch's validators sign (consensus/signing.ts workReportDigest).
    function workReportDigest(uint64 epoch, WorkEntry[] calldata entries) public view returns (bytes32) {
        return keccak256(abi.encodePacked(WORK_REPORT_DOMAIN, chainId, epoch, keccak256(abi.encode(entries))));
    }

    /// Accepts the certified work report of a finished epoch, once, and distributes that epoch's emission.
    function submitReport(uint64 epoch, WorkEntry[] calldata entries, Certificate calldata certificate)
        external
        nonReentrant
    {
        uint64 current = registry.currentEpoch();
        if (epoch == 0 || epoch >= current) revert EpochNotFinished(epoch, current);
        if (reportAccepted[epoch]) revert ReportAlreadyAccepted(epoch);
        Member[] memory members = registry.epochMembers(epoch);
        if (entries.length != members.length) revert ReportSizeMismatch(entries.length, members.length);
        bytes32 digest = workReportDigest(epoch, entries);
        (uint64 signingPower, uint64 totalPower) = registry.verifyCertificate(
            epoch, digest, certificate.signers, certificate.signature, certificate.signatureG2
        );
        uint256 emission = emissionPerEpoch;
        if (unallocated < emission) revert InsufficientFunding(unallocated, emission);
        reportAccepted[epoch] = true;
        unallocated -= emission;
        uint256 distributed = _distribute(epoch, members, entries, emission);
        unallocated += emission - distributed;
        emit ReportAccepted(
            epoch, digest, certificate.signers, certificate.signature, signingPower, totalPower, distributed
        );
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Claims

    /// Pays the caller's rewards from the pool of `sequencerId`. Reverts with NothingToClaim when there are none,
    /// so a second claim without new rewards fails.
    function claim(uint32 sequencerId) external nonReentrant returns (uint256 amount) {
        amount = _take(sequencerId, msg.sender);
        token.safeTransfer(msg.sender, amount);
        emit Claimed(sequencerId, msg.sender, amount);
    }

    /// Stakes the caller's rewards from the pool of `sequencerId` back into that pool.
    function compound(uint32 sequencerId) external nonReentrant returns (uint256 amount) {
        amount = _take(sequencerId, msg.sender);
        token.forceApprove(address(staking), amount);
        staking.stakeFor(msg.sender, sequencerId, amount);
        emit Compounded(sequencerId, msg.sender, amount);
    }

    function claimCommission() external nonReentrant returns (uint256 amount) {
        amount = commissionOf[msg.sender];
        if (amount == 0) revert NothingToClaim(msg.sender);
        commissionOf[msg.sender] = 0;
        commissionOwed -= amount;
        token.safeTransfer(msg.sender, amount);
        emit CommissionClaimed(msg.sender, amount);
    }

    /// Staking calls this before `account`'s shares in the pool change, with the shares held until now.
    function settle(uint32 sequencerId, address account, uint256 shares) external {
        if (msg.sender != address(staking)) revert NotStaking();
        _settle(sequencerId, account, shares);
    }

    /// Rewards the account can claim from the pool now.
    function pendingRewards(uint32 sequencerId, address account) external view returns (uint256) {
        Account storage a = _accounts[sequencerId][account];
        uint256 shares = staking.sharesOf(sequencerId, account);
        return a.credited + Math.mulDiv(shares, accRewardPerShare[sequencerId] - a.accSnapshot, ACC_SCALE);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Internals

    function _distribute(uint64 epoch, Member[] memory members, WorkEntry[] calldata entries, uint256 emission)
        private
        returns (uint256 distributed)
    {
        uint256 workPool = emission * workShareBps / BPS;
        uint256 stakePool = emission - workPool;
        uint256[] memory scores = new uint256[](members.length);
        uint256 totalScore = 0;
        uint256 totalStake = 0;
        WorkWeights memory w = workWeights;
        for (uint256 i = 0; i < members.length; i++) {
            WorkEntry calldata e = entries[i];
            scores[i] = uint256(e.blocksProposed) * w.blocksProposed + uint256(e.precommitsSigned) * w.precommitsSigned
                + uint256(e.batchesPosted) * w.batchesPosted;
            totalScore += scores[i];
            totalStake += members[i].stake;
        }
        for (uint256 i = 0; i < members.length; i++) {
            uint256 reward = totalScore == 0 ? 0 : Math.mulDiv(workPool, scores[i], totalScore);
            reward += totalStake == 0 ? 0 : Math.mulDiv(stakePool, members[i].stake, totalStake);
            if (reward != 0) distributed += _pay(epoch, members[i], scores[i], reward);
        }
    }

    /// Credits one validator's reward: commission to its operator, the rest to its pool's accumulator. Returns what
    /// was credited (0 when forfeited).
    function _pay(uint64 epoch, Member memory m, uint256 score, uint256 reward) private returns (uint256) {
        uint256 shares = staking.poolShares(m.sequencerId);
        if (shares == 0 || registry.isJailed(m.sequencerId)) {
            emit RewardForfeited(epoch, m.sequencerId, reward);
            return 0;
        }
        uint256 commission = reward * m.commissionBps / BPS;
        address operator = registry.operatorOf(m.sequencerId);
        commissionOf[operator] += commission;
        commissionOwed += commission;
        accRewardPerShare[m.sequencerId] += Math.mulDiv(reward - commission, ACC_SCALE, shares);
        emit RewardDistributed(epoch, m.sequencerId, score, reward, commission);
        return reward;
    }

    function _settle(uint32 sequencerId, address account, uint256 shares) private {
        Account storage a = _accounts[sequencerId][account];
        uint256 acc = accRewardPerShare[sequencerId];
        if (shares != 0 && acc != a.accSnapshot) {
            a.credited += Math.mulDiv(shares, acc - a.accSnapshot, ACC_SCALE);
        }
        a.accSnapshot = acc;
    }

    function _take(uint32 sequencerId, address account) private returns (uint256 amount) {
        _settle(sequencerId, account, staking.sharesOf(sequencerId, account));
        Account storage a = _accounts[sequencerId][account];
        amount = a.credited;
        if (amount == 0) revert NothingToClaim(account);
        a.credited = 0;
    }

    function _setEmission(uint256 emissionPerEpoch_, uint16 workShareBps_, WorkWeights memory weights) private {
        if (workShareBps_ > BPS) revert BadWorkShare(workShareBps_);
        emissionPerEpoch = emissionPerEpoch_;
        workShareBps = workShareBps_;
        workWeights = weights;
        emit EmissionChanged(emissionPerEpoch_, workShareBps_, weights);
    }
}
