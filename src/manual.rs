//! `completions SHELL` and `man`: the shell completion scripts and the man page, generated from
//! the clap definition of [`crate::cli`], so that they can never disagree with the program.

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use serde_json::{Value, json};

use crate::cli::Cli;
use crate::error::Error;

/// The name the scripts and the page are written for.
const BIN: &str = "tixngo-feedback";

/// One of clap_mangen's section renderers.
type Render = fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>;

/// The completion script for `shell`, as text and in its JSON envelope.
pub fn completions(shell: Shell) -> Result<(String, Value), Error> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut script);
    let script = utf8(script)?;
    let json = json!({ "shell": shell.to_string(), "script": script });
    Ok((script.trim_end().to_owned(), json))
}

/// The man page (section 1, roff): the top-level page, then a section per subcommand with its
/// description, synopsis, options and examples.
pub(crate) fn man_page() -> Result<(String, Value), Error> {
    let mut command = Cli::command();
    command.build();
    let mut page = Vec::new();
    Man::new(command.clone())
        .render(&mut page)
        .map_err(internal)?;
    // The top-level help's end holds the exit codes and examples.
    let mut page = utf8(page)?.replacen(".SH EXTRA", ".SH \"EXIT STATUS AND EXAMPLES\"", 1);
    for subcommand in documented(&command) {
        render_subcommand(&mut page, subcommand)?;
    }
    let json = json!({ "man": page });
    Ok((page.trim_end().to_owned(), json))
}

/// A subcommand's section, then its own subcommands' sections.
fn render_subcommand(page: &mut String, command: &clap::Command) -> Result<(), Error> {
    let name = command.get_bin_name().unwrap_or(command.get_name());
    page.push_str(&format!(
        ".SH \"{}\"\n",
        name.to_uppercase().replace('-', "\\-")
    ));
    let man = Man::new(command.clone());
    let parts: [(&str, bool, Render); 4] = [
        ("DESCRIPTION", true, Man::render_description_section),
        ("SYNOPSIS", true, Man::render_synopsis_section),
        (
            "OPTIONS",
            command.get_arguments().any(|arg| !arg.is_hide_set()),
            Man::render_options_section,
        ),
        (
            "EXTRA",
            command.get_after_help().is_some(),
            Man::render_extra_section,
        ),
    ];
    for (heading, wanted, render) in parts {
        if !wanted {
            continue;
        }
        let mut part = Vec::new();
        render(&man, &mut part).map_err(internal)?;
        // Each part comes as a top-level section; here it is a subsection of the command's.
        let part = utf8(part)?.replacen(&format!(".SH {heading}"), &subsection(heading), 1);
        page.push_str(&part);
    }
    for subcommand in documented(command) {
        render_subcommand(page, subcommand)?;
    }
    Ok(())
}

/// The subcommands the page documents: all but clap's `help`.
fn documented(command: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    command
        .get_subcommands()
        .filter(|subcommand| subcommand.get_name() != "help")
}

/// The subsection heading a top-level section of clap_mangen becomes.
fn subsection(heading: &str) -> String {
    let title = match heading {
        "DESCRIPTION" => "Description",
        "SYNOPSIS" => "Synopsis",
        "OPTIONS" => "Options",
        _ => "Examples",
    };
    format!(".SS {title}")
}

fn utf8(bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(internal)
}

fn internal(error: impl std::fmt::Display) -> Error {
    Error::Internal(format!("cannot render the help: {error}"))
}
