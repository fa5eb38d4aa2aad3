// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {BLS} from "../BLS.sol";

/// @notice Test only: exposes the BLS library so that test/staking/bls.test.ts can compare it with the node's
/// TypeScript implementation. Not deployed by anything else.
contract BlsHarness {
    function g1Matches(bytes calldata compressed, bytes calldata point) external pure returns (bool) {
        return BLS.g1Matches(compressed, point);
    }

    function g2Matches(bytes calldata compressed, bytes calldata point) external pure returns (bool) {
        return BLS.g2Matches(compressed, point);
    }

    function expandMessageXmd(bytes calldata message, bytes calldata dst) external pure returns (bytes memory) {
        return BLS.expandMessageXmd(message, dst);
    }

    function hashToG2(bytes calldata message, bytes calldata dst) external view returns (bool ok, bytes memory h) {
        return BLS.hashToG2(message, dst);
    }

    function verify(bytes calldata publicKey, bytes calldata message, bytes calldata signature, bool pop)
        external
        view
        returns (bool)
    {
        return BLS.verify(publicKey, message, signature, pop ? BLS.POP_DST : BLS.SIG_DST);
    }

    /// Gas of one signature verification, for the gas report.
    function verifyGas(bytes calldata publicKey, bytes calldata message, bytes calldata signature)
        external
        view
        returns (bool ok, uint256 gasUsed)
    {
        uint256 start = gasleft();
        ok = BLS.verify(publicKey, message, signature, BLS.SIG_DST);
        gasUsed = start - gasleft();
    }
}
