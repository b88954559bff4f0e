// A NameNode and a DataNode with a PROVIDED volume, in one JVM, for LiveMR's export test
// (test/integration/hdfs-provided.test.ts): the stock daemons (NameNode.createNameNode,
// DataNode.createDataNode, as `hdfs namenode` / `hdfs datanode` start them), not MiniDFSCluster,
// on the name directory `livemr hdfs export` wrote. Started by test/hadoop/provided.ts as an
// unprivileged user on loopback.
//
//   java ProvidedHdfs WORKDIR [key=value ...]
//
// The key=value pairs are the configuration of both daemons (the export's hdfs-site.xml plus the
// test's addresses and directories). Writes the live client configuration to
// WORKDIR/conf/{core,hdfs}-site.xml, prints "LIVEMR-PROVIDED-READY {json}" once the DataNode has
// registered and the NameNode has left safe mode (every PROVIDED block has its location), and runs
// until its stdin closes; then it stops the DataNode and the NameNode and exits.
import java.io.File;
import java.io.FileOutputStream;
import java.io.OutputStream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.server.datanode.DataNode;
import org.apache.hadoop.hdfs.server.namenode.NameNode;
import org.apache.hadoop.metrics2.lib.DefaultMetricsSystem;

public class ProvidedHdfs {
  public static void main(String[] args) throws Exception {
    File work = new File(args[0]).getAbsoluteFile();
    Configuration conf = new HdfsConfiguration();
    for (int i = 1; i < args.length; i++) {
      int eq = args[i].indexOf('=');
      conf.set(args[i].substring(0, eq), args[i].substring(eq + 1));
    }
    // two daemons in one JVM register the same JVM metrics source; the mini-cluster mode allows it
    DefaultMetricsSystem.setMiniClusterMode(true);
    NameNode nn = NameNode.createNameNode(new String[0], conf);
    String rpc = "127.0.0.1:" + nn.getNameNodeAddress().getPort();
    String fs = "hdfs://" + rpc;
    Configuration dnConf = new HdfsConfiguration(conf);
    dnConf.set("fs.defaultFS", fs);
    dnConf.set("dfs.namenode.rpc-address", rpc);
    DataNode dn = DataNode.createDataNode(new String[0], dnConf);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      try { dn.shutdown(); } catch (Throwable t) { t.printStackTrace(); }
      try { nn.stop(); nn.join(); } catch (Throwable t) { t.printStackTrace(); }
    }));
    for (int tries = 0; ; tries++) {
      if (dn.isDatanodeFullyStarted() && !nn.isInSafeMode() && nn.getNamesystem().getNumLiveDataNodes() >= 1) break;
      if (tries > 1800) throw new IllegalStateException("the DataNode did not register or the NameNode stayed in safe mode: " + nn.getNamesystem().getSafemode());
      Thread.sleep(100);
    }
    Configuration live = new HdfsConfiguration(conf);
    live.set("fs.defaultFS", fs);
    live.set("dfs.namenode.rpc-address", rpc);
    live.set("dfs.namenode.http-address", "127.0.0.1:" + nn.getHttpAddress().getPort());
    File confDir = new File(work, "conf");
    confDir.mkdirs();
    for (String f : new String[] {"core-site.xml", "hdfs-site.xml"}) {
      try (OutputStream o = new FileOutputStream(new File(confDir, f))) { live.writeXml(o); }
    }
    System.out.println("LIVEMR-PROVIDED-READY {\"fs\":\"" + fs + "\",\"http\":\"127.0.0.1:" + nn.getHttpAddress().getPort()
        + "\",\"dataNode\":\"" + dn.getXferAddress() + "\",\"blockPoolId\":\"" + nn.getNamesystem().getBlockPoolId() + "\"}");
    System.out.flush();
    while (System.in.read() >= 0) { }
    System.exit(0); // the shutdown hook stops the DataNode, then the NameNode
  }
}
