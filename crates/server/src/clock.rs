//! Small time helpers.

/// "YYYY/MM" (UTC) to spread stored files over folders.
pub fn today_path() -> String {
    let now = jiff::Timestamp::now();
    now.strftime("%Y/%m").to_string()
}
