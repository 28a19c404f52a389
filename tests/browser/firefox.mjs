// Debian's Firefox ESR, headless, driven over WebDriver BiDi by puppeteer-core, with its
// fake camera and microphone (the only prefs set: no WebRTC or network pref is changed).
import puppeteer from "puppeteer-core";

export function launchFirefox() {
  return puppeteer.launch({
    browser: "firefox",
    executablePath: process.env.FIREFOX || "/usr/bin/firefox-esr",
    headless: true,
    extraPrefsFirefox: {
      "media.navigator.streams.fake": true,
      "media.navigator.permission.disabled": true,
    },
  });
}
