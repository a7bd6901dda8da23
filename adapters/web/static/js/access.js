/* 谁用了我的材料: each entry's badge, checked by this browser, trusting nothing the server
 * says about the check itself. For every entry of the page it reads the entry's proof
 * (/me/access/{event}/proof: the API's access-log entry, with its leaf, its inclusion path
 * and the signed checkpoint), then:
 *   1. the leaf must be this entry's record: its originator id is the entry's access id,
 *      its topic an access or attestation event, and (when the stored state reads as JSON)
 *      its resident, department, officer and outcome are the ones the page shows;
 *   2. leaf hash = SHA-256(0x00 || leaf), computed here with SubtleCrypto (RFC 9162 2.1.1);
 *   3. the inclusion path is walked from leaf (event - 1) up to the root of a tree of
 *      tree_size leaves, node = SHA-256(0x01 || left || right) (RFC 9162 2.1.3.2), and must
 *      end at the checkpoint's root_hash;
 *   4. the checkpoint's Ed25519 signature over
 *      "civicvault checkpoint v1\n" || tree_size (8 bytes) || time in ms (8 bytes) || root
 *      must verify with its key from /.well-known/checkpoint-keys.json (where this browser's
 *      SubtleCrypto has Ed25519; where it has not, the badge says so in its title).
 * The badge's data-state becomes "verified", "failed" or "pending" (no checkpoint covers the
 * entry yet). Without this script the badge stays "unchecked". */
(function () {
  "use strict";

  var list = document.querySelector("ol.access-log");
  if (!list || !window.crypto || !window.crypto.subtle) {
    return;
  }
  var subtle = window.crypto.subtle;
  var PREFIX = new TextEncoder().encode("civicvault checkpoint v1\n");
  var TOPICS = [":AccessAttempt.Recorded", ":AttestationAttempt.Recorded"];
  var keySet = null; // the promise of the published checkpoint keys, read once
  var checkpoints = {}; // checkpoint JSON -> promise of "signed" | "unsigned" (no Ed25519 here)

  function fromHex(text) {
    if (typeof text !== "string" || !/^([0-9a-f]{2})*$/.test(text)) {
      throw new Error("not hex");
    }
    var bytes = new Uint8Array(text.length / 2);
    for (var i = 0; i < bytes.length; i++) {
      bytes[i] = parseInt(text.substr(i * 2, 2), 16);
    }
    return bytes;
  }

  function toHex(bytes) {
    return Array.prototype.map.call(bytes, function (b) {
      return (b < 16 ? "0" : "") + b.toString(16);
    }).join("");
  }

  function fromBase64(text, url) {
    if (url) {
      text = text.replace(/-/g, "+").replace(/_/g, "/");
      while (text.length % 4) { text += "="; }
    }
    var raw = atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }

  function concat(parts) {
    var length = parts.reduce(function (n, p) { return n + p.length; }, 0);
    var out = new Uint8Array(length);
    var at = 0;
    parts.forEach(function (p) { out.set(p, at); at += p.length; });
    return out;
  }

  function same(a, b) {
    if (a.length !== b.length) { return false; }
    var diff = 0;
    for (var i = 0; i < a.length; i++) { diff |= a[i] ^ b[i]; }
    return diff === 0;
  }

  function sha256(bytes) {
    return subtle.digest("SHA-256", bytes).then(function (d) { return new Uint8Array(d); });
  }

  function leafHash(leaf) {
    return sha256(concat([new Uint8Array([0]), leaf]));
  }

  function nodeHash(left, right) {
    return sha256(concat([new Uint8Array([1]), left, right]));
  }

  /* RFC 9162 2.1.3.2, as projections/merkle.py verify_inclusion. */
  function rootFromPath(hash, index, size, path) {
    if (!(index >= 0 && index < size)) { return Promise.resolve(null); }
    var fn = index, sn = size - 1, r = Promise.resolve(hash);
    for (var i = 0; i < path.length; i++) {
      if (sn === 0) { return Promise.resolve(null); }
      var p = path[i];
      if (fn % 2 === 1 || fn === sn) {
        r = r.then(nodeHash.bind(null, p));
        if (fn % 2 === 0) {
          while (fn !== 0 && fn % 2 === 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        r = r.then(function (p, current) { return nodeHash(current, p); }.bind(null, p));
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : Promise.resolve(null);
  }

  /* Milliseconds since the epoch as the ledger signs them: int(timestamp() * 1000), the
   * float arithmetic of Python's datetime.timestamp() done the same way. */
  function signedMillis(text) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})$/
      .exec(text);
    if (!m) { throw new Error("not a time"); }
    var seconds = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1000;
    if (m[8] !== "Z") {
      var sign = m[8][0] === "-" ? -1 : 1;
      seconds -= sign * (parseInt(m[8].substr(1, 2), 10) * 3600 + parseInt(m[8].substr(4, 2), 10) * 60);
    }
    var micros = seconds * 1e6 + parseInt(((m[7] || "") + "000000").substr(0, 6), 10);
    return Math.trunc((micros / 1e6) * 1000);
  }

  function checkpointMessage(checkpoint) {
    var numbers = new DataView(new ArrayBuffer(16));
    numbers.setBigUint64(0, BigInt(checkpoint.tree_size));
    numbers.setBigUint64(8, BigInt(signedMillis(checkpoint.timestamp)));
    return concat([PREFIX, new Uint8Array(numbers.buffer), fromHex(checkpoint.root_hash)]);
  }

  function keys() {
    if (!keySet) {
      keySet = fetch(list.dataset.keys, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) { throw new Error("no checkpoint keys"); }
        return r.json();
      });
    }
    return keySet;
  }

  /* "signed", "unsigned" (this browser has no Ed25519), or a rejection. */
  function checkSignature(checkpoint) {
    var id = JSON.stringify(checkpoint);
    if (!checkpoints[id]) {
      checkpoints[id] = keys().then(function (set) {
        var jwk = (set.keys || []).filter(function (k) { return k.kid === checkpoint.key_id; })[0];
        if (!jwk || jwk.kty !== "OKP" || jwk.crv !== "Ed25519") {
          throw new Error("the checkpoint's key is not published");
        }
        return subtle.importKey("raw", fromBase64(jwk.x, true), { name: "Ed25519" }, false,
                                ["verify"]).then(function (key) {
          return subtle.verify({ name: "Ed25519" }, key, fromHex(checkpoint.signature),
                               checkpointMessage(checkpoint)).then(function (good) {
            if (!good) { throw new Error("the checkpoint's signature does not verify"); }
            return "signed";
          });
        }, function (error) {
          if (error && error.name === "NotSupportedError") { return "unsigned"; }
          throw error;
        });
      });
    }
    return checkpoints[id];
  }

  /* Whether the leaf is this entry's stored record (see the ledger's leaf layout). */
  function leafIsEntry(leaf, item) {
    if (leaf.length < 26) { return false; }
    var length = (leaf[0] << 8) | leaf[1];
    if (leaf.length < 26 + length) { return false; }
    var topic = new TextDecoder().decode(leaf.subarray(2, 2 + length));
    if (!TOPICS.some(function (t) { return topic.slice(-t.length) === t; })) { return false; }
    var originator = toHex(leaf.subarray(2 + length, 18 + length));
    if (originator !== item.dataset.accessId.replace(/-/g, "")) { return false; }
    var state;
    try {
      state = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(leaf.subarray(26 + length)));
    } catch (e) {
      return true; // a compressed or enciphered store: nothing more to read in clear
    }
    return state.resident_id === list.dataset.resident &&
      state.department === item.dataset.department &&
      state.officer === item.dataset.officer &&
      state.allowed === (item.dataset.allowed === "true");
  }

  function show(item, state, title) {
    var badge = item.querySelector(".badge");
    badge.dataset.state = state;
    badge.textContent = list.dataset["text" + state[0].toUpperCase() + state.slice(1)];
    badge.title = title || "";
  }

  function check(item) {
    show(item, "checking");
    return fetch(item.dataset.proof, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) { throw new Error("no proof: " + r.status); }
        return r.json();
      })
      .then(function (page) {
        var entry = page.items && page.items[0];
        var event = Number(item.dataset.event);
        if (!entry || entry.access_id !== item.dataset.accessId || entry.event !== event) {
          throw new Error("the proof is of another entry");
        }
        if (!entry.ledger || !page.checkpoint) {
          return "pending";
        }
        var proof = entry.ledger, checkpoint = page.checkpoint;
        var leaf = fromBase64(proof.leaf);
        if (proof.leaf_index !== event - 1 || proof.tree_size !== checkpoint.tree_size ||
            !leafIsEntry(leaf, item)) {
          throw new Error("the leaf is not this entry's record");
        }
        var path = proof.inclusion_path.map(fromHex);
        return leafHash(leaf)
          .then(function (hash) { return rootFromPath(hash, event - 1, checkpoint.tree_size, path); })
          .then(function (root) {
            if (!root || !same(root, fromHex(checkpoint.root_hash))) {
              throw new Error("the path does not lead to the checkpoint's root");
            }
            return checkSignature(checkpoint);
          });
      })
      .then(function (outcome) {
        if (outcome === "pending") {
          show(item, "pending", list.dataset.textPendingTitle);
        } else {
          show(item, "verified", outcome === "signed" ? list.dataset.textVerifiedTitle
                                                      : list.dataset.textUnsignedTitle);
          item.querySelector(".badge").dataset.signature = outcome;
        }
      })
      .catch(function (error) {
        show(item, "failed", list.dataset.textFailedTitle + " (" + error.message + ")");
      });
  }

  Array.prototype.forEach.call(list.querySelectorAll("li[data-proof]"), check);
})();
