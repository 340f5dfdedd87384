// A browser-like client of hearth's document doorway, using the official Automerge package.
//
//   node doc_client.mjs pull-edit BASE_URL DOC_ID CLIENT STATE_FILE
//       sync the document from hearth, make a local edit (fromJs = "js", count = 2, push "js"
//       onto tags), and save the document and the sync state to STATE_FILE (not sent yet).
//   node doc_client.mjs sync BASE_URL DOC_ID CLIENT STATE_FILE
//       load them, sync with hearth until neither side has anything to say, print the JSON.
import * as A from "@automerge/automerge";
import { readFileSync, writeFileSync } from "node:fs";

const [mode, base, docId, client, stateFile] = process.argv.slice(2);

async function sync(doc, state) {
  for (let round = 0; round < 50; round++) {
    let msg;
    [state, msg] = A.generateSyncMessage(doc, state);
    if (msg === null) return [doc, state];
    const res = await fetch(`${base}/v1/docs/${docId}/sync?client=${client}`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: msg,
    });
    if (res.status === 200) {
      const reply = new Uint8Array(await res.arrayBuffer());
      [doc, state] = A.receiveSyncMessage(doc, state, reply);
    } else if (res.status !== 204) {
      throw new Error(`sync answered ${res.status}: ${await res.text()}`);
    }
  }
  throw new Error("sync did not settle in 50 rounds");
}

if (mode === "pull-edit") {
  let [doc, state] = await sync(A.init(), A.initSyncState());
  doc = A.change(doc, (d) => {
    d.fromJs = "js";
    d.count = 2;
    d.tags.push("js");
  });
  writeFileSync(
    stateFile,
    JSON.stringify({
      doc: Buffer.from(A.save(doc)).toString("base64"),
      state: Buffer.from(A.encodeSyncState(state)).toString("base64"),
    }),
  );
  console.log(JSON.stringify(doc));
} else if (mode === "sync") {
  const saved = JSON.parse(readFileSync(stateFile, "utf8"));
  const doc0 = A.load(new Uint8Array(Buffer.from(saved.doc, "base64")));
  const state0 = A.decodeSyncState(new Uint8Array(Buffer.from(saved.state, "base64")));
  const [doc] = await sync(doc0, state0);
  console.log(JSON.stringify(doc));
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
