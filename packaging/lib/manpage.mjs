// Turns `sealcache --help` (already laid out as a man page: NAME, SYNOPSIS, ...)
// into roff, so `man sealcache` and `--help` never disagree.

/** @param {string} help @param {string} version */
export function manPage(help, version) {
  const out = [`.TH SEALCACHE 1 "" "sealcache ${version}" "User Commands"`];
  let inBody = false;
  for (const line of help.replace(/\s+$/, "").split("\n")) {
    if (/^[A-Z][A-Z ]+$/.test(line)) {
      if (inBody) out.push(".fi");
      // NAME stays filled text: whatis/apropos read it as "name \- summary".
      inBody = line !== "NAME";
      out.push(`.SH ${line}`, ...(inBody ? [".nf"] : []));
    } else if (line.trim() !== "" || inBody) {
      out.push(roffEscape(line.replace(/^ {4}/, "")));
    }
  }
  if (inBody) out.push(".fi");
  return out.join("\n") + "\n";
}

function roffEscape(line) {
  // roff: backslashes double, and a leading dot or quote would read as a request.
  const s = line.replace(/\\/g, "\\e").replace(/-/g, "\\-");
  return /^[.']/.test(s) ? `\\&${s}` : s;
}
