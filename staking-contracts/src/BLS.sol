// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title BLS12-381 min-pk signatures on the EIP-2537 precompiles (Prague).
/// @notice The node's ciphersuite (docs/protocol.md, consensus/crypto/bls-noble.ts): 48-byte compressed G1 public keys,
/// 96-byte compressed G2 signatures, hash to G2 with expand_message_xmd(SHA-256) + SSWU (random oracle), proof of
/// possession scheme. The precompiles only take uncompressed points (128-byte G1, 256-byte G2: 64-byte zero-padded
/// field elements) and decompression would cost a modular square root, so callers pass both forms and
/// `g1Matches`/`g2Matches` check that they are the same point: the x coordinate bytes are equal, the flags say
/// "compressed, not infinity", and the sign flag equals the lexicographic sign of y. The curve equation then fixes y up
/// to that sign, and the precompiles check the curve equation and (pairing) the subgroup.
library BLS {
    /// Hash-to-G2 domain of consensus signatures (votes, certificates, work reports).
    bytes internal constant SIG_DST = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
    /// Hash-to-G2 domain of proofs of possession; the message is the 48-byte compressed public key.
    bytes internal constant POP_DST = "BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

    uint256 internal constant PUBLIC_KEY_LENGTH = 48;
    uint256 internal constant SIGNATURE_LENGTH = 96;
    uint256 internal constant G1_POINT_LENGTH = 128;
    uint256 internal constant G2_POINT_LENGTH = 256;

    // EIP-2537 and Byzantium precompiles.
    address private constant MODEXP = address(0x05);
    address private constant G1_ADD = address(0x0b);
    address private constant G2_ADD = address(0x0d);
    address private constant PAIRING_CHECK = address(0x0f);
    address private constant MAP_FP2_TO_G2 = address(0x11);

    // Gas handed to each precompile: its price with headroom. A precompile that fails (a point off the curve or out of
    // the subgroup) burns all the gas it was given, so a bound keeps that cost small and leaves the caller enough gas
    // to revert with its own error.
    uint256 private constant MODEXP_GAS = 5_000; // EIP-2565: 200 for a 64-byte base and modulus
    uint256 private constant G1_ADD_GAS = 1_000; // 375
    uint256 private constant G2_ADD_GAS = 2_000; // 600
    uint256 private constant MAP_FP2_TO_G2_GAS = 60_000; // 23,800
    uint256 private constant PAIRING_2_GAS = 250_000; // 37,700 + 2 * 32,600

    // The base field prime p and (p - 1) / 2 as 64-byte padded big-endian numbers: (high word, low word).
    uint256 private constant P_HI = 0x1a0111ea397fe69a4b1ba7b6434bacd7;
    uint256 private constant P_LO = 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab;
    uint256 private constant HALF_P_HI = 0x0d0088f51cbff34d258dd3db21a5d66b;
    uint256 private constant HALF_P_LO = 0xb23ba5c279c2895fb39869507b587b120f55ffff58a9ffffdcff7fffffffd555;

    // -G1: the generator with y negated, for the pairing check e(pk, H(m)) * e(-G1, sig) == 1.
    uint256 private constant NEG_G1_X_HI = 0x17f1d3a73197d7942695638c4fa9ac0f;
    uint256 private constant NEG_G1_X_LO = 0xc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb;
    uint256 private constant NEG_G1_Y_HI = 0x114d1d6855d545a8aa7d76c8cf2e21f2;
    uint256 private constant NEG_G1_Y_LO = 0x67816aef1db507c96655b9d5caac42364e6f38ba0ecb751bad54dcd6b939c2ca;

    /// Clears the three flag bits (compression, infinity, sign) of the first 16 bytes of a compressed encoding.
    uint256 private constant FLAGS_CLEARED_128 = (uint256(1) << 125) - 1;
    uint8 private constant FLAG_COMPRESSED = 0x80;
    uint8 private constant FLAG_INFINITY = 0x40;
    uint8 private constant FLAG_SIGN = 0x20;

    /// True iff `compressed` (48 bytes, ZCash encoding) and `point` (128 bytes, EIP-2537) encode the same G1 point
    /// and it is not the identity. Does not check the curve equation or the subgroup: the precompiles do.
    function g1Matches(bytes calldata compressed, bytes calldata point) internal pure returns (bool) {
        if (compressed.length != PUBLIC_KEY_LENGTH || point.length != G1_POINT_LENGTH) return false;
        uint8 flags = uint8(compressed[0]);
        if (flags & (FLAG_COMPRESSED | FLAG_INFINITY) != FLAG_COMPRESSED) return false;
        if (!_xEquals(compressed[0:48], point[0:64], true)) return false;
        (bool ok, uint256 yHi, uint256 yLo) = _field(point[64:128]);
        if (!ok || (yHi == 0 && yLo == 0)) return false;
        return (flags & FLAG_SIGN != 0) == _aboveHalf(yHi, yLo);
    }

    /// True iff `compressed` (96 bytes: x.c1 || x.c0 with the flags on the first byte) and `point` (256 bytes:
    /// x.c0 || x.c1 || y.c0 || y.c1) encode the same G2 point and it is not the identity. The sign of y is that of
    /// y.c1, or of y.c0 when y.c1 is zero (the ZCash rule; consensus/crypto/bls-noble.ts `sortBit`).
    function g2Matches(bytes calldata compressed, bytes calldata point) internal pure returns (bool) {
        if (compressed.length != SIGNATURE_LENGTH || point.length != G2_POINT_LENGTH) return false;
        uint8 flags = uint8(compressed[0]);
        if (flags & (FLAG_COMPRESSED | FLAG_INFINITY) != FLAG_COMPRESSED) return false;
        if (!_xEquals(compressed[0:48], point[64:128], true)) return false; // x.c1
        if (!_xEquals(compressed[48:96], point[0:64], false)) return false; // x.c0
        (bool ok0, uint256 y0Hi, uint256 y0Lo) = _field(point[128:192]);
        (bool ok1, uint256 y1Hi, uint256 y1Lo) = _field(point[192:256]);
        if (!ok0 || !ok1) return false;
        bool y1Zero = y1Hi == 0 && y1Lo == 0;
        if (y1Zero && y0Hi == 0 && y0Lo == 0) return false;
        bool sign = y1Zero ? _aboveHalf(y0Hi, y0Lo) : _aboveHalf(y1Hi, y1Lo);
        return (flags & FLAG_SIGN != 0) == sign;
    }

    /// Verifies `signature` (a 256-byte G2 point) of `message` by `publicKey` (a 128-byte G1 point) under `dst`:
    /// e(pk, H(m)) == e(G1, sig). False, never a revert, on points the precompiles refuse (off the curve, outside the
    /// subgroup, non-canonical) and on the identity as the key.
    function verify(bytes memory publicKey, bytes memory message, bytes calldata signature, bytes memory dst)
        internal
        view
        returns (bool)
    {
        if (publicKey.length != G1_POINT_LENGTH || signature.length != G2_POINT_LENGTH) return false;
        if (_isZero(publicKey)) return false;
        (bool hashed, bytes memory h) = hashToG2(message, dst);
        if (!hashed) return false;
        bytes memory input =
            abi.encodePacked(publicKey, h, NEG_G1_X_HI, NEG_G1_X_LO, NEG_G1_Y_HI, NEG_G1_Y_LO, signature);
        (bool ok, bytes memory out) = PAIRING_CHECK.staticcall{gas: PAIRING_2_GAS}(input);
        return ok && out.length == 32 && uint256(bytes32(out)) == 1;
    }

    /// a + b in G1 (128-byte EIP-2537 points); ok = false when the precompile refuses an input.
    function addG1(bytes memory a, bytes memory b) internal view returns (bool ok, bytes memory sum) {
        bytes memory out;
        (ok, out) = G1_ADD.staticcall{gas: G1_ADD_GAS}(bytes.concat(a, b));
        if (!ok || out.length != G1_POINT_LENGTH) return (false, sum);
        return (true, out);
    }

    /// hash_to_curve (RFC 9380, BLS12381G2_XMD:SHA-256_SSWU_RO_) = MAP_FP2_TO_G2(u0) + MAP_FP2_TO_G2(u1), where
    /// (u0, u1) = hash_to_field(message, 2). The precompile's map clears the cofactor, which is linear, so the sum of
    /// the two mapped points equals clear_cofactor(map(u0) + map(u1)).
    function hashToG2(bytes memory message, bytes memory dst) internal view returns (bool ok, bytes memory h) {
        bytes memory uniform = expandMessageXmd(message, dst);
        bytes memory u0 = new bytes(128);
        bytes memory u1 = new bytes(128);
        // Fp2 element (c0, c1) = (e_0, e_1): the EIP-2537 encoding is c0 || c1, the same order as hash_to_field.
        if (!_reduce(uniform, 0, u0, 0) || !_reduce(uniform, 64, u0, 64)) return (false, h);
        if (!_reduce(uniform, 128, u1, 0) || !_reduce(uniform, 192, u1, 64)) return (false, h);
        (bool ok0, bytes memory q0) = MAP_FP2_TO_G2.staticcall{gas: MAP_FP2_TO_G2_GAS}(u0);
        (bool ok1, bytes memory q1) = MAP_FP2_TO_G2.staticcall{gas: MAP_FP2_TO_G2_GAS}(u1);
        if (!ok0 || !ok1 || q0.length != G2_POINT_LENGTH || q1.length != G2_POINT_LENGTH) return (false, h);
        bytes memory sum;
        (ok, sum) = G2_ADD.staticcall{gas: G2_ADD_GAS}(bytes.concat(q0, q1));
        if (!ok || sum.length != G2_POINT_LENGTH) return (false, h);
        return (true, sum);
    }

    /// expand_message_xmd (RFC 9380 5.3.1) with SHA-256 (precompile 0x02) for len_in_bytes = 256: two Fp2 elements of
    /// 64-byte (L = 64) chunks. b_in_bytes = 32, s_in_bytes = 64, ell = 8.
    function expandMessageXmd(bytes memory message, bytes memory dst) internal pure returns (bytes memory out) {
        bytes memory dstPrime = abi.encodePacked(dst, uint8(dst.length));
        bytes32 b0 = sha256(abi.encodePacked(bytes32(0), bytes32(0), message, uint16(256), uint8(0), dstPrime));
        out = new bytes(256);
        bytes32 bi = sha256(abi.encodePacked(b0, uint8(1), dstPrime));
        assembly ("memory-safe") {
            mstore(add(out, 0x20), bi)
        }
        for (uint256 i = 2; i <= 8; i++) {
            bi = sha256(abi.encodePacked(b0 ^ bi, uint8(i), dstPrime));
            assembly ("memory-safe") {
                mstore(add(out, mul(0x20, i)), bi)
            }
        }
    }

    /// dst[dstOffset..+64] = src[srcOffset..+64] mod p, via MODEXP(base, 1, p) with a 64-byte modulus so that the
    /// result comes out already in the 64-byte padded EIP-2537 form.
    function _reduce(bytes memory src, uint256 srcOffset, bytes memory dst, uint256 dstOffset)
        private
        view
        returns (bool ok)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, 64) // base length
            mstore(add(ptr, 0x20), 1) // exponent length
            mstore(add(ptr, 0x40), 64) // modulus length
            let s := add(add(src, 0x20), srcOffset)
            mstore(add(ptr, 0x60), mload(s))
            mstore(add(ptr, 0x80), mload(add(s, 0x20)))
            mstore8(add(ptr, 0xa0), 1)
            mstore(add(ptr, 0xa1), P_HI)
            mstore(add(ptr, 0xc1), P_LO)
            ok := staticcall(MODEXP_GAS, 0x05, ptr, 0xe1, add(add(dst, 0x20), dstOffset), 64)
        }
    }

    /// The 48 x bytes of a compressed encoding (flags cleared when `flagged`) equal the 64-byte padded element.
    function _xEquals(bytes calldata compressed48, bytes calldata padded64, bool flagged) private pure returns (bool) {
        uint256 hi = uint256(uint128(bytes16(compressed48[0:16])));
        if (flagged) hi &= FLAGS_CLEARED_128;
        uint256 lo = uint256(bytes32(compressed48[16:48]));
        return uint256(bytes32(padded64[0:32])) == hi && uint256(bytes32(padded64[32:64])) == lo;
    }

    /// A 64-byte padded field element as (high word, low word); ok = false unless the padding is zero and it is < p.
    function _field(bytes calldata padded64) private pure returns (bool ok, uint256 hi, uint256 lo) {
        hi = uint256(bytes32(padded64[0:32]));
        lo = uint256(bytes32(padded64[32:64]));
        ok = hi < P_HI || (hi == P_HI && lo < P_LO);
    }

    /// y > (p - 1) / 2, the "lexicographically largest" test of the ZCash encoding.
    function _aboveHalf(uint256 hi, uint256 lo) private pure returns (bool) {
        return hi > HALF_P_HI || (hi == HALF_P_HI && lo > HALF_P_LO);
    }

    /// The identity in EIP-2537 form is all zero bytes. `data` is a whole number of 32-byte words here.
    function _isZero(bytes memory data) private pure returns (bool zero) {
        zero = true;
        assembly ("memory-safe") {
            let start := add(data, 0x20)
            for { let p := start } lt(p, add(start, mload(data))) { p := add(p, 0x20) } {
                if mload(p) { zero := 0 }
            }
        }
    }
}
