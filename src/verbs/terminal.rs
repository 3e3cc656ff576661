//! The operator's terminal while `kolla exec` runs a command on one:
//! whether there is one, raw mode (every key goes to the command as it is
//! typed, Ctrl-C and Ctrl-D included, and the command's own terminal
//! echoes), the window's size and its changes, and standard input read on
//! a thread of its own. Nothing else in kolla changes the terminal.

use std::io::{IsTerminal, Read};

use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr};

/// Whether kolla's own standard input and output are both terminals: the
/// command then gets one too, as `docker exec -it` gives it.
pub fn is_interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The terminal's size, (rows, columns), when it gives one.
pub fn size() -> Option<(u16, u16)> {
    let size = tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_row > 0 && size.ws_col > 0).then_some((size.ws_row, size.ws_col))
}

/// The terminal in raw mode until dropped, then as it was (on every way
/// out of the verb, errors included, before they are printed).
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> std::io::Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // A terminal that cannot be set back is gone: nothing to restore.
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// Standard input, piece by piece as it is read, from a thread of its own:
/// a read cannot be cancelled, and tokio's stdin (a blocking task) would
/// hold the runtime's shutdown, after the command ended, until the
/// operator pressed a key. The channel closes at the end of the input.
pub fn stdin_pieces() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = [0u8; 4096];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if sender.blocking_send(buffer[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    receiver
}
