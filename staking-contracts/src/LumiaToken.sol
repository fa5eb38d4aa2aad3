// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title LUMIA for devnets and tests: a fixed supply minted once to `holder`.
/// @notice Production deployments point Staking and Rewards at the existing LUMIA token instead. No mint or burn
/// after construction, so the total supply is a conserved quantity the invariant test sums against.
contract LumiaToken is ERC20 {
    constructor(address holder, uint256 supply) ERC20("Lumia", "LUMIA") {
        _mint(holder, supply);
    }
}
