// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IRewards, ISequencerRegistry, IStaking} from "./Interfaces.sol";

/// @title Staking: self-stake and delegation to sequencers, unbonding, commission, slashing.
/// @notice Each sequencer has a pool of LUMIA. Stakers hold shares of its active stake; the operator's own shares are
/// its self-stake. Unbonding stake moves to the pool's second, unbonding, share pool for `unbondingEpochs` epochs, so
/// that a slash (which cuts both pools by the same fraction, pro rata over every staker, the operator included) also
/// reaches stake that is leaving. Shares make both cuts O(1). The registry reads `snapshotOf` at each epoch boundary:
/// that snapshot is the stake and power of the epoch. Rounding always favours the pool; what is left in a pool when
/// its last share leaves goes to `dust`, held here and swept to the treasury by governance.
contract Staking is IStaking, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    bytes32 public constant GOVERNOR_ROLE = keccak256("GOVERNOR_ROLE");
    /// Held by the Slashing contract.
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    uint256 public constant BPS = 10_000;
    /// Open unbonding entries per (pool, staker): bounds the loop of `withdraw`.
    uint256 public constant MAX_UNBONDING_ENTRIES = 16;

    struct Pool {
        address operator;
        uint16 commissionBps;
        /// Epoch of the last commission change (registration counts as one).
        uint64 commissionEpoch;
        uint128 activeStake;
        uint128 activeShares;
        uint128 unbondingStake;
        uint128 unbondingShares;
    }

    struct Unbonding {
        uint128 shares;
        uint64 maturityEpoch;
    }

    struct CommissionRules {
        uint16 maxBps;
        /// Largest change of one `setCommission`, and at most one change per epoch.
        uint16 maxChangeBps;
    }

    error ZeroAddress();
    error RewardsAlreadySet();
    error NotRegistry();
    error NotRewards();
    error ZeroAmount();
    error SequencerNotOpen(uint32 sequencerId);
    error PoolDepleted(uint32 sequencerId);
    error StakeTooSmall(uint256 amount);
    error NoStake(uint32 sequencerId, address account);
    error InsufficientStake(uint256 requested, uint256 available);
    error TooManyUnbondings(uint256 max);
    error NothingToWithdraw(uint32 sequencerId, address account);
    error UnbondingNotMature(uint64 maturityEpoch, uint64 currentEpoch);
    error NotOperator(uint32 sequencerId, address caller);
    error CommissionTooHigh(uint256 bps, uint256 maxBps);
    error CommissionChangeTooLarge(uint256 fromBps, uint256 toBps, uint256 maxChangeBps);
    error CommissionChangedThisEpoch(uint64 epoch);
    error BadSlashFraction(uint256 bps);

    event PoolCreated(uint32 indexed sequencerId, address indexed operator, uint16 commissionBps);
    event Staked(uint32 indexed sequencerId, address indexed account, uint256 amount, uint256 shares);
    event UnbondStarted(
        uint32 indexed sequencerId, address indexed account, uint256 amount, uint256 shares, uint64 maturityEpoch
    );
    event Withdrawn(uint32 indexed sequencerId, address indexed account, uint256 amount);
    /// Takes effect in the set snapshot of the next epoch boundary.
    event CommissionChanged(uint32 indexed sequencerId, uint16 commissionBps, uint64 epoch);
    event Slashed(uint32 indexed sequencerId, uint256 activeAmount, uint256 unbondingAmount, uint16 fractionBps);
    event DustSwept(address indexed treasury, uint256 amount);

    IERC20 public immutable token;
    ISequencerRegistry public immutable registry;
    uint64 public immutable unbondingEpochs;
    uint16 public immutable maxCommissionBps;
    uint16 public immutable maxCommissionChangeBps;
    IRewards public rewards;
    /// Receives slashed stake and swept dust.
    address public treasury;
    uint256 public dust;

    mapping(uint32 sequencerId => Pool) private _pools;
    mapping(uint32 sequencerId => mapping(address account => uint256)) private _shares;
    mapping(uint32 sequencerId => mapping(address account => Unbonding[])) private _unbondings;

    constructor(
        address governance,
        IERC20 token_,
        ISequencerRegistry registry_,
        uint64 unbondingEpochs_,
        CommissionRules memory commission,
        address treasury_
    ) {
        if (governance == address(0) || address(token_) == address(0) || treasury_ == address(0)) revert ZeroAddress();
        if (address(registry_) == address(0)) revert ZeroAddress();
        if (commission.maxBps > BPS) revert CommissionTooHigh(commission.maxBps, BPS);
        _grantRole(DEFAULT_ADMIN_ROLE, governance);
        _grantRole(GOVERNOR_ROLE, governance);
        token = token_;
        registry = registry_;
        unbondingEpochs = unbondingEpochs_;
        maxCommissionBps = commission.maxBps;
        maxCommissionChangeBps = commission.maxChangeBps;
        treasury = treasury_;
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Wiring and governance

    /// Wires the Rewards contract (deployed after this one). Once.
    function setRewards(IRewards rewards_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(rewards_) == address(0)) revert ZeroAddress();
        if (address(rewards) != address(0)) revert RewardsAlreadySet();
        rewards = rewards_;
    }

    function setTreasury(address treasury_) external onlyRole(GOVERNOR_ROLE) {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
    }

    function sweepDust() external onlyRole(GOVERNOR_ROLE) {
        uint256 amount = dust;
        dust = 0;
        token.safeTransfer(treasury, amount);
        emit DustSwept(treasury, amount);
    }

    /// Called by the registry when a sequencer registers.
    function initPool(uint32 sequencerId, address operator, uint16 commissionBps) external {
        if (msg.sender != address(registry)) revert NotRegistry();
        if (commissionBps > maxCommissionBps) revert CommissionTooHigh(commissionBps, maxCommissionBps);
        Pool storage p = _pools[sequencerId];
        p.operator = operator;
        p.commissionBps = commissionBps;
        p.commissionEpoch = registry.currentEpoch();
        emit PoolCreated(sequencerId, operator, commissionBps);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Stakers

    /// Stakes `amount` into the pool of `sequencerId` (self-stake when the caller is its operator). Earns from the
    /// next report accepted and counts in the power snapshotted at the next boundary.
    function stake(uint32 sequencerId, uint256 amount) external nonReentrant {
        _stake(msg.sender, msg.sender, sequencerId, amount);
    }

    /// Rewards' `compound`: stakes on behalf of `account` with tokens the Rewards contract holds for it.
    function stakeFor(address account, uint32 sequencerId, uint256 amount) external nonReentrant {
        if (msg.sender != address(rewards)) revert NotRewards();
        _stake(account, msg.sender, sequencerId, amount);
    }

    /// Moves `amount` of the caller's active stake (type(uint256).max: all of it) to unbonding; withdrawable from
    /// epoch `currentEpoch + unbondingEpochs`, slashable until withdrawn.
    function unbond(uint32 sequencerId, uint256 amount) external nonReentrant returns (uint256 unbonded) {
        Pool storage p = _pools[sequencerId];
        uint256 owned = _shares[sequencerId][msg.sender];
        if (owned == 0) revert NoStake(sequencerId, msg.sender);
        uint256 burned;
        if (amount == type(uint256).max) {
            burned = owned;
            unbonded = Math.mulDiv(owned, p.activeStake, p.activeShares);
        } else {
            // Rounded up: the shares left are never worth more than the stake left.
            burned = Math.mulDiv(amount, p.activeShares, p.activeStake, Math.Rounding.Ceil);
            if (burned > owned) {
                revert InsufficientStake(amount, Math.mulDiv(owned, p.activeStake, p.activeShares));
            }
            unbonded = amount;
        }
        if (unbonded == 0) revert ZeroAmount();
        Unbonding[] storage entries = _unbondings[sequencerId][msg.sender];
        if (entries.length >= MAX_UNBONDING_ENTRIES) revert TooManyUnbondings(MAX_UNBONDING_ENTRIES);
        uint256 unbondingShares = p.unbondingShares == 0
            ? unbonded
            : Math.mulDiv(unbonded, p.unbondingShares, p.unbondingStake);
        if (unbondingShares == 0) revert StakeTooSmall(unbonded);

        _settle(sequencerId, msg.sender, owned);
        _shares[sequencerId][msg.sender] = owned - burned;
        p.activeShares -= burned.toUint128();
        p.activeStake -= unbonded.toUint128();
        if (p.activeShares == 0 && p.activeStake != 0) {
            dust += p.activeStake;
            p.activeStake = 0;
        }
        p.unbondingShares += unbondingShares.toUint128();
        p.unbondingStake += unbonded.toUint128();
        uint64 maturity = registry.currentEpoch() + unbondingEpochs;
        entries.push(Unbonding({shares: unbondingShares.toUint128(), maturityEpoch: maturity}));
        emit UnbondStarted(sequencerId, msg.sender, unbonded, burned, maturity);
    }

    /// Pays out every matured unbonding entry of the caller in this pool. Reverts with `UnbondingNotMature` when
    /// there are entries but none has matured (an early withdrawal).
    function withdraw(uint32 sequencerId) external nonReentrant returns (uint256 amount) {
        Unbonding[] storage entries = _unbondings[sequencerId][msg.sender];
        if (entries.length == 0) revert NothingToWithdraw(sequencerId, msg.sender);
        uint64 epoch = registry.currentEpoch();
        uint256 shares = 0;
        uint64 earliest = type(uint64).max;
        uint256 i = 0;
        while (i < entries.length) {
            Unbonding memory e = entries[i];
            if (e.maturityEpoch <= epoch) {
                shares += e.shares;
                entries[i] = entries[entries.length - 1];
                entries.pop();
            } else {
                if (e.maturityEpoch < earliest) earliest = e.maturityEpoch;
                i++;
            }
        }
        if (shares == 0) revert UnbondingNotMature(earliest, epoch);
        Pool storage p = _pools[sequencerId];
        amount = Math.mulDiv(shares, p.unbondingStake, p.unbondingShares);
        p.unbondingShares -= shares.toUint128();
        p.unbondingStake -= amount.toUint128();
        if (p.unbondingShares == 0 && p.unbondingStake != 0) {
            dust += p.unbondingStake;
            p.unbondingStake = 0;
        }
        token.safeTransfer(msg.sender, amount);
        emit Withdrawn(sequencerId, msg.sender, amount);
    }

    /// The operator changes its commission: at most `maxCommissionBps`, by at most `maxCommissionChangeBps`, once
    /// per epoch. The set snapshot of the next boundary carries it, so an epoch's rewards always use the rate that
    /// was known when the epoch began.
    function setCommission(uint32 sequencerId, uint16 commissionBps) external {
        Pool storage p = _pools[sequencerId];
        if (msg.sender != p.operator || p.operator == address(0)) revert NotOperator(sequencerId, msg.sender);
        if (commissionBps > maxCommissionBps) revert CommissionTooHigh(commissionBps, maxCommissionBps);
        uint256 from = p.commissionBps;
        uint256 delta = commissionBps > from ? commissionBps - from : from - commissionBps;
        if (delta > maxCommissionChangeBps) {
            revert CommissionChangeTooLarge(from, commissionBps, maxCommissionChangeBps);
        }
        uint64 epoch = registry.currentEpoch();
        if (p.commissionEpoch == epoch) revert CommissionChangedThisEpoch(epoch);
        p.commissionBps = commissionBps;
        p.commissionEpoch = epoch;
        emit CommissionChanged(sequencerId, commissionBps, epoch);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Slashing

    /// Cuts `fractionBps` of the pool's active and unbonding stake (every staker pro rata) and sends it to the
    /// treasury. Shares are untouched, so reward accounting per share is unaffected.
    function slash(uint32 sequencerId, uint16 fractionBps) external onlyRole(SLASHER_ROLE) returns (uint256 slashed) {
        if (fractionBps == 0 || fractionBps >= BPS) revert BadSlashFraction(fractionBps);
        Pool storage p = _pools[sequencerId];
        uint256 active = uint256(p.activeStake) * fractionBps / BPS;
        uint256 unbonding = uint256(p.unbondingStake) * fractionBps / BPS;
        p.activeStake -= active.toUint128();
        p.unbondingStake -= unbonding.toUint128();
        slashed = active + unbonding;
        if (slashed != 0) token.safeTransfer(treasury, slashed);
        emit Slashed(sequencerId, active, unbonding, fractionBps);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Views

    function pool(uint32 sequencerId) external view returns (Pool memory) {
        return _pools[sequencerId];
    }

    function sharesOf(uint32 sequencerId, address account) external view returns (uint256) {
        return _shares[sequencerId][account];
    }

    function poolShares(uint32 sequencerId) external view returns (uint256) {
        return _pools[sequencerId].activeShares;
    }

    function stakeOf(uint32 sequencerId, address account) public view returns (uint256) {
        Pool storage p = _pools[sequencerId];
        if (p.activeShares == 0) return 0;
        return Math.mulDiv(_shares[sequencerId][account], p.activeStake, p.activeShares);
    }

    function totalStake(uint32 sequencerId) external view returns (uint256) {
        return _pools[sequencerId].activeStake;
    }

    function selfStake(uint32 sequencerId) public view returns (uint256) {
        return stakeOf(sequencerId, _pools[sequencerId].operator);
    }

    /// What the registry snapshots at an epoch boundary.
    function snapshotOf(uint32 sequencerId)
        external
        view
        returns (uint256 selfStake_, uint256 totalStake_, uint16 commissionBps)
    {
        Pool storage p = _pools[sequencerId];
        return (selfStake(sequencerId), p.activeStake, p.commissionBps);
    }

    function unbondingsOf(uint32 sequencerId, address account) external view returns (Unbonding[] memory) {
        return _unbondings[sequencerId][account];
    }

    /// The current value of the account's unbonding entries in this pool (after any slash).
    function unbondingOf(uint32 sequencerId, address account) external view returns (uint256) {
        Pool storage p = _pools[sequencerId];
        if (p.unbondingShares == 0) return 0;
        Unbonding[] storage entries = _unbondings[sequencerId][account];
        uint256 shares = 0;
        for (uint256 i = 0; i < entries.length; i++) {
            shares += entries[i].shares;
        }
        return Math.mulDiv(shares, p.unbondingStake, p.unbondingShares);
    }

    // ----------------------------------------------------------------------------------------------------------------
    // Internals

    function _stake(address account, address payer, uint32 sequencerId, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        if (!registry.isOpen(sequencerId)) revert SequencerNotOpen(sequencerId);
        Pool storage p = _pools[sequencerId];
        uint256 shares;
        if (p.activeShares == 0) {
            shares = amount;
        } else {
            if (p.activeStake == 0) revert PoolDepleted(sequencerId);
            shares = Math.mulDiv(amount, p.activeShares, p.activeStake);
        }
        if (shares == 0) revert StakeTooSmall(amount);
        uint256 owned = _shares[sequencerId][account];
        _settle(sequencerId, account, owned);
        _shares[sequencerId][account] = owned + shares;
        p.activeShares += shares.toUint128();
        p.activeStake += amount.toUint128();
        token.safeTransferFrom(payer, address(this), amount);
        emit Staked(sequencerId, account, amount, shares);
    }

    function _settle(uint32 sequencerId, address account, uint256 shares) private {
        IRewards r = rewards;
        if (address(r) != address(0)) r.settle(sequencerId, account, shares);
    }
}
