// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";

/// @title LiftLedger anchor: the head of the platform's RFC 9162 Merkle log, append-only on chain.
/// @notice The anchorer publishes (treeSize, root) with a consistency proof from the previous
/// head. The contract checks the proof itself (RFC 9162 §2.1.4.2), so a forked or rewritten
/// history is refused by the chain, not by the platform's goodwill. Every anchored root stays
/// readable (`rootAt`) so a supervisor can verify an inclusion proof against the chain alone.
/// The EIP-712 domain (name "LiftLedger", version "1", chain id, this address) is the one crew
/// members sign maintenance records under.
contract LiftLedgerAnchor is AccessControl, EIP712 {
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");

    /// @notice Size of the latest anchored tree (0 before the first anchor).
    uint64 public treeSize;
    /// @notice Root of every anchored tree size.
    mapping(uint64 size => bytes32 root) public rootAt;

    event Anchored(uint64 indexed treeSize, bytes32 root, uint64 previousSize);

    error NotAnExtension(uint64 currentSize, uint64 newSize);
    error BadConsistencyProof();

    constructor(address admin, address anchorer) EIP712("LiftLedger", "1") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ANCHORER_ROLE, anchorer);
    }

    /// @notice Anchor a new log head that extends the current one.
    /// @param newSize number of entries in the new tree
    /// @param newRoot RFC 9162 root of those entries
    /// @param proof consistency proof from the current head to the new one (empty for the first)
    function anchor(uint64 newSize, bytes32 newRoot, bytes32[] calldata proof)
        external
        onlyRole(ANCHORER_ROLE)
    {
        uint64 oldSize = treeSize;
        if (newSize <= oldSize) revert NotAnExtension(oldSize, newSize);
        if (oldSize != 0 && !verifyConsistency(oldSize, newSize, rootAt[oldSize], newRoot, proof)) {
            revert BadConsistencyProof();
        }
        treeSize = newSize;
        rootAt[newSize] = newRoot;
        emit Anchored(newSize, newRoot, oldSize);
    }

    /// @notice Root of the latest anchored tree.
    function root() external view returns (bytes32) {
        return rootAt[treeSize];
    }

    /// @notice RFC 9162 §2.1.4.2: is `secondRoot` an append-only extension of `firstRoot`?
    function verifyConsistency(
        uint64 first,
        uint64 second,
        bytes32 firstRoot,
        bytes32 secondRoot,
        bytes32[] calldata proof
    ) public view returns (bool) {
        if (first == 0 || first > second) return false;
        if (first == second) return proof.length == 0 && firstRoot == secondRoot;
        if (proof.length == 0) return false;
        // An old tree whose size is a power of two is itself a node of the new tree.
        bool prepend = first & (first - 1) == 0;
        uint256 count = proof.length + (prepend ? 1 : 0);
        uint64 fn = first - 1;
        uint64 sn = second - 1;
        while (fn & 1 == 1) {
            fn >>= 1;
            sn >>= 1;
        }
        bytes32 fr = prepend ? firstRoot : proof[0];
        bytes32 sr = fr;
        for (uint256 i = 1; i < count; ++i) {
            bytes32 c = proof[prepend ? i - 1 : i];
            if (sn == 0) return false;
            if (fn & 1 == 1 || fn == sn) {
                fr = _node(c, fr);
                sr = _node(c, sr);
                if (fn & 1 == 0) {
                    while (fn != 0 && fn & 1 == 0) {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                sr = _node(sr, c);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return fr == firstRoot && sr == secondRoot && sn == 0;
    }

    /// @notice The EIP-712 domain separator crew signatures are made under.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @dev RFC 9162 node hash SHA-256(0x01 || left || right), through the precompile with
    /// the free memory as scratch space, so a long proof does not keep growing memory.
    function _node(bytes32 left, bytes32 right) private view returns (bytes32 result) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore8(ptr, 0x01)
            mstore(add(ptr, 1), left)
            mstore(add(ptr, 33), right)
            if iszero(staticcall(gas(), 0x02, ptr, 65, 0x00, 0x20)) { revert(0, 0) }
            result := mload(0x00)
        }
    }
}
