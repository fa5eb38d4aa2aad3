// `dcn init --dir D`: creates the operator's keys in keystores and prints the public identity that goes into a
// genesis file or an L1 registration.
import { readFile } from "node:fs/promises";
import { initNode } from "../keys/init.ts";

export async function initCommand(
  o: { dir: string; passwordFile?: string; insecure?: boolean },
  print: (line: string) => void,
): Promise<number> {
  let password: string | undefined;
  if (o.passwordFile !== undefined) password = (await readFile(o.passwordFile, "utf8")).replace(/\r?\n$/, "");
  else password = process.env.DCN_KEY_PASSWORD;
  if (o.insecure !== true && (password === undefined || password.length === 0)) {
    print(
      "dcn init: a keystore password is required: pass --password-file FILE or set DCN_KEY_PASSWORD (or --insecure for a devnet)",
    );
    return 2;
  }
  const result = await initNode(o.dir, o.insecure === true ? { insecure: true } : { password: password ?? "" });
  print(JSON.stringify(result.identity, null, 2));
  print(
    `keys written to ${o.dir}/keys${o.insecure === true ? " (UNENCRYPTED: devnet only)" : ""}; identity in ${o.dir}/identity.json`,
  );
  return 0;
}
