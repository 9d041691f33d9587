#!/usr/bin/perl
# A site consumer of relaymesh's message_queue with IO::Async: poll plus
# kickstart, the pattern relaymesh grew from. The poll (a periodic timer),
# the kick (a UDP socket) and NOTIFY (the database socket) all call one
# sub, consume(), which takes the rows of our types, duress first and then
# oldest first, handles each (here: prints it as one JSON line) and deletes
# it. A lost kick costs one poll interval at most.
#
# A row is deleted after it is handled: if this process dies in between,
# the row is handled again on the next start (at least once); dedupe on its
# id. One such consumer per type: for several integrations on one type, use
# relay-runner's consumer groups.
#
# Needs Debian's libdbd-pg-perl and libio-async-perl. Example:
#   perl consumer.pl --dsn "dbname=relaymesh" --types duress,notification \
#       --kick 127.0.0.1:7496 --poll 1
use strict;
use warnings;
use DBI;
use Getopt::Long;
use IO::Async::Handle;
use IO::Async::Loop;
use IO::Async::Socket;
use IO::Async::Timer::Periodic;
use IO::Socket::INET;
use JSON::PP;

my ($dsn, $types, $kick, $poll) = ('dbname=relaymesh', 'duress', undef, 1);
GetOptions('dsn=s' => \$dsn, 'types=s' => \$types, 'kick=s' => \$kick, 'poll=f' => \$poll)
  or die "usage: consumer.pl --dsn DSN --types a,b --kick HOST:PORT --poll SECONDS\n";
my @types = split /,/, $types;
my $json = JSON::PP->new->canonical;
$| = 1;

my $loop = IO::Async::Loop->new;
my ($dbh, $notify_handle);

# The integration itself: replace with the pop-up, SMS or PA call.
sub handle_row {
  my ($id, $type, $data) = @_;
  my $event = decode_json($data);
  print $json->encode({queue_id => 0 + $id, type => $type, event_id => $event->{id},
                       title => $event->{title}, location => $event->{location}}), "\n";
}

# (Re)connects with LISTEN, and watches the connection's socket for NOTIFY.
sub connect_db {
  $loop->remove($notify_handle) if $notify_handle;
  undef $notify_handle;
  $dbh = DBI->connect("dbi:Pg:$dsn", '', '', {AutoCommit => 1, RaiseError => 1, PrintError => 0});
  $dbh->do('LISTEN message_queue');
  # A dup of libpq's socket: closing ours never closes libpq's.
  open(my $fh, '<&', $dbh->{pg_socket}) or die "pg_socket: $!";
  $notify_handle = IO::Async::Handle->new(
    read_handle => $fh,
    on_read_ready => sub {
      1 while $dbh->pg_notifies;
      consume();
    },
  );
  $loop->add($notify_handle);
  print STDERR "consumer: listening\n";
}

# Handles every row of our types that is there now.
sub consume {
  my $ok = eval {
    connect_db() unless $dbh && $dbh->ping;
    while (1) {
      my $rows = $dbh->selectall_arrayref(
        'SELECT id, type, data::text FROM message_queue WHERE type = ANY(?) '
          . 'ORDER BY priority DESC, id LIMIT 100', undef, \@types);
      for my $row (@$rows) {
        handle_row(@$row);
        $dbh->do('DELETE FROM message_queue WHERE id = ?', undef, $row->[0]);
      }
      last if @$rows < 100;
    }
    1;
  };
  unless ($ok) {
    print STDERR "consumer: database: $@; the next poll tries again\n";
    $loop->remove($notify_handle) if $notify_handle;
    undef $notify_handle;
    undef $dbh;
  }
}

if ($kick) {
  my ($host, $port) = $kick =~ /^(.*):(\d+)$/ or die "--kick: expected HOST:PORT\n";
  my $s = IO::Socket::INET->new(Proto => 'udp', LocalAddr => $host, LocalPort => $port)
    or die "No bind on $kick: $@\n";
  $loop->add(IO::Async::Socket->new(
    handle => $s,
    on_recv => sub { consume() },
    on_recv_error => sub { die "Cannot recv - $_[1]\n" },
  ));
}

$loop->add(IO::Async::Timer::Periodic->new(
  interval => $poll,
  first_interval => 0,  # a look at start: rows may have waited while we were down
  on_tick => \&consume,
)->start);

$loop->run;
