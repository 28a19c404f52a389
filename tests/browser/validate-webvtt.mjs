// Validates a WebVTT file with the W3C validator's parser (webvtt-parser): exits 1 with
// the errors on stderr when there are any. Usage: node validate-webvtt.mjs FILE
import { readFileSync } from 'node:fs';
import webvtt from 'webvtt-parser'; // CommonJS: its exports come as one object

const { WebVTTParser } = webvtt;

const text = readFileSync(process.argv[2], 'utf8');
const tree = new WebVTTParser().parse(text, 'metadata');
if (tree.errors.length > 0) {
  console.error(JSON.stringify(tree.errors));
  process.exit(1);
}
console.log(`${tree.cues.length} cues`);
