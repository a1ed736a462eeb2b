// Compile the LiftLedger contracts with the pinned solc (package-lock.json) and print one
// JSON artifact per contract to stdout: ABI, creation and runtime bytecode, compiler version
// and the exact settings. `node contracts/compile.mjs > contracts/build/LiftLedgerAnchor.json`
// regenerates the committed artifact; tests/ledger/test_contract_artifacts.py checks it.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, process.env.LIFTLEDGER_TOOLS_DIR ?? "..");
const SOURCE = "LiftLedgerAnchor.sol";
const CONTRACT = "LiftLedgerAnchor";

const settings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  outputSelection: {
    "*": {
      "*": [
        "abi",
        "evm.bytecode.object",
        "evm.deployedBytecode.object",
        "evm.deployedBytecode.immutableReferences",
      ],
    },
  },
};
const input = {
  language: "Solidity",
  sources: { [SOURCE]: { content: readFileSync(path.join(here, SOURCE), "utf8") } },
  settings,
};

function findImports(importPath) {
  try {
    return { contents: readFileSync(path.join(root, "node_modules", importPath), "utf8") };
  } catch (error) {
    return { error: `cannot read ${importPath}: ${error.message}` };
  }
}

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const compiled = output.contracts[SOURCE][CONTRACT];
const artifact = {
  contractName: CONTRACT,
  source: `contracts/${SOURCE}`,
  compiler: { name: "solc", version: solc.version() },
  settings,
  abi: compiled.abi,
  bytecode: "0x" + compiled.evm.bytecode.object,
  deployedBytecode: "0x" + compiled.evm.deployedBytecode.object,
  // Where the constructor writes immutable values (EIP-712 domain) into the runtime code.
  immutableReferences: compiled.evm.deployedBytecode.immutableReferences,
};
process.stdout.write(JSON.stringify(artifact, null, 2) + "\n");
