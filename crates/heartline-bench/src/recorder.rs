//! A recorder in the page: a `MutationObserver` that stamps (`Date.now()`)
//! the moments the connection banner leaves `open`, comes back to `open`, and
//! shows nothing waiting to be sent with no pending message in the chat.
//! Stamped in the page as the DOM changes, so the figures do not depend on
//! how often WebDriver polls.

use std::time::Duration;

use heartline_e2e::{Browser, Error, Result};
use serde_json::Value;

/// Installs the recorder on the current document (idempotent).
const INSTALL: &str = r#"
if (!window.__hlRec) {
  window.__hlRec = { armed: false, left: null, open: null, drained: null };
  const check = () => {
    const r = window.__hlRec;
    if (!r.armed) return;
    const banner = document.querySelector('.hl-banner');
    if (!banner) return;
    const now = Date.now();
    if (banner.dataset.status !== 'open') {
      if (r.left === null) r.left = now;
      return;
    }
    if (r.left === null) return;
    if (r.open === null) r.open = now;
    if (r.drained === null && banner.dataset.waiting === '0'
        && document.querySelector('.message--pending') === null) {
      r.drained = now;
    }
  };
  new MutationObserver(check).observe(document.body,
    { subtree: true, childList: true, attributes: true, characterData: true });
  window.__hlRecArm = () => {
    Object.assign(window.__hlRec, { armed: true, left: null, open: null, drained: null });
    check();
  };
}
return true;
"#;

/// What the recorder stamped since it was armed, in page milliseconds since
/// the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stamps {
    /// The banner left `open` (the link was declared lost).
    pub left: Option<f64>,
    /// The banner said `open` again.
    pub open: Option<f64>,
    /// Open, nothing waiting (`data-waiting="0"`) and no pending message.
    pub drained: Option<f64>,
}

/// Installs the recorder in the current page (again after a navigation).
pub async fn install(browser: &Browser) -> Result<()> {
    browser.execute(INSTALL, Vec::new()).await.map(drop)
}

/// Clears the stamps and starts recording; call it while the banner says
/// `open`.
pub async fn arm(browser: &Browser) -> Result<()> {
    browser
        .execute("window.__hlRecArm(); return true;", Vec::new())
        .await
        .map(drop)
}

/// The stamps so far.
pub async fn stamps(browser: &Browser) -> Result<Stamps> {
    let value = browser
        .execute("return window.__hlRec || null;", Vec::new())
        .await?;
    if value.is_null() {
        return Err(Error::Other(
            "the page has no recorder (reloaded?)".to_owned(),
        ));
    }
    let stamp = |key: &str| value.get(key).and_then(Value::as_f64);
    Ok(Stamps {
        left: stamp("left"),
        open: stamp("open"),
        drained: stamp("drained"),
    })
}

/// Polls until `done` holds for the stamps; answers them.
pub async fn wait(
    browser: &Browser,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Stamps) -> bool,
) -> Result<Stamps> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = stamps(browser).await?;
        if done(&now) {
            return Ok(now);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::timeout(
                format!("{what} (stamps so far: {now:?})"),
                timeout,
            ));
        }
        tokio::time::sleep(heartline_e2e::POLL / 2).await;
    }
}
